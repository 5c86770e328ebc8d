"""``models.special_tokens``: percentile wrappers on the tokenizer and the embedding matrix."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from models import EncoderSettings, TextEncoder, default_model_path
from models.encoder import load_tokenizer
from models.special_tokens import _description, add_percentile_tokens, resize_for_new_tokens
from processors.percentiles import render_percentile, wrapper_tokens
from processors.token_budget import TokenMeter

BASE_VOCAB = 30_522  # all-MiniLM-L6-v2


@pytest.fixture(scope="module", params=["native", "transformers"])
def encoder(request: pytest.FixtureRequest) -> Iterator[TextEncoder]:
    """The bundled model with the wrappers, on each of ``TextEncoder``'s two paths."""
    yield TextEncoder.load(EncoderSettings(device="cpu"), backend=request.param)


def embedding_rows(encoder: TextEncoder) -> torch.Tensor:
    embeddings = encoder.model.get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Embedding)
    return embeddings.weight.detach()  # (V, D)


# --- tokenizer -------------------------------------------------------------------------------


def test_every_percentile_is_one_token(meter: TokenMeter) -> None:
    assert [n for n in range(1, 101) if meter.count(str(n)) != 1] == []


def test_every_wrapper_is_one_special_token(tokenizer: Any, meter: TokenMeter) -> None:
    for token in wrapper_tokens():
        assert meter.count(token) == 1, token
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert token_id >= BASE_VOCAB
        assert tokenizer.added_tokens_decoder[token_id].special
    assert len(tokenizer) == BASE_VOCAB + len(wrapper_tokens())


def test_a_rendered_percentile_is_three_tokens(tokenizer: Any, meter: TokenMeter) -> None:
    assert meter.count("<view_pct>71</view_pct>") == 3
    assert tokenizer.tokenize("views <view_pct>71</view_pct>") == [
        "views",
        "<view_pct>",
        "71",
        "</view_pct>",
    ]
    rendered = " ".join(render_percentile(f, 100) for f in ("views", "likes", "followers"))
    assert meter.count(rendered) == 9


def test_adding_twice_adds_nothing_the_second_time() -> None:
    tokenizer = AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)
    assert add_percentile_tokens(tokenizer) == wrapper_tokens()
    assert add_percentile_tokens(tokenizer) == []
    assert len(tokenizer) == BASE_VOCAB + 10


def test_tokens_can_be_turned_off() -> None:
    tokenizer, new = load_tokenizer(EncoderSettings(percentile_tokens=False))
    assert new == []
    assert len(tokenizer) == BASE_VOCAB
    assert len(tokenizer.tokenize("<view_pct>")) > 1


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("<view_pct>", "views percentile"),
        ("</view_pct>", "views"),
        ("<follower_pct>", "followers percentile"),
        ("</share_pct>", "shares"),
    ],
)
def test_descriptions(token: str, words: str) -> None:
    assert _description(token) == words


# --- embedding matrix ------------------------------------------------------------------------


def test_model_version_marks_the_added_tokens(encoder: TextEncoder) -> None:
    assert encoder.model_version.endswith("+pct")


def test_embedding_matrix_grows_to_the_tokenizer(encoder: TextEncoder) -> None:
    assert embedding_rows(encoder).shape == (len(encoder.tokenizer), 384)
    assert len(encoder.tokenizer) == BASE_VOCAB + 10


def test_new_rows_are_the_mean_of_their_descriptive_words(encoder: TextEncoder) -> None:
    weights = embedding_rows(encoder)
    rows = []
    for token in wrapper_tokens():
        ids = encoder.tokenizer(_description(token), add_special_tokens=False)["input_ids"]
        assert ids and max(ids) < BASE_VOCAB  # described by original, trained rows
        row = weights[encoder.tokenizer.convert_tokens_to_ids(token)]
        assert torch.allclose(row, weights[ids].mean(dim=0)), token
        rows.append(row)
    assert len({tuple(r.tolist()) for r in rows}) == len(rows)  # opening != closing


def test_new_tokens_embed_without_error(encoder: TextEncoder) -> None:
    vectors = encoder.encode(["post\nengagement: views <view_pct>71</view_pct>", "views 71"])
    assert vectors.shape == (2, 384)
    assert float(vectors[0] @ vectors[1]) < 0.9999  # the wrappers are not ignored


def test_no_new_tokens_means_no_resize(encoder: TextEncoder) -> None:
    before = embedding_rows(encoder).clone()
    resize_for_new_tokens(encoder.model, encoder.tokenizer, [])
    assert torch.equal(embedding_rows(encoder), before)


def test_a_model_dir_that_has_the_tokens_is_not_resized(tmp_path: Path) -> None:
    encoder = TextEncoder.load(EncoderSettings(device="cpu"), backend="transformers")
    assert isinstance(encoder.model, PreTrainedModel)
    assert isinstance(encoder.tokenizer, PreTrainedTokenizerBase)
    encoder.model.save_pretrained(tmp_path)  # as training saves its checkpoints
    encoder.tokenizer.save_pretrained(tmp_path)
    reloaded = TextEncoder.load(EncoderSettings(model_path=tmp_path, device="cpu"))
    assert reloaded.backend == "native"
    assert not reloaded.model_version.endswith("+pct")
    assert len(reloaded.tokenizer) == len(encoder.tokenizer)
    assert torch.equal(embedding_rows(reloaded), embedding_rows(encoder))
    assert reloaded.tokenizer.tokenize("<like_pct>5</like_pct>") == [
        "<like_pct>",
        "5",
        "</like_pct>",
    ]


def test_tokens_off_keeps_the_original_model(encoder: TextEncoder) -> None:
    plain = TextEncoder.load(EncoderSettings(percentile_tokens=False, device="cpu"))
    assert not plain.model_version.endswith("+pct")
    assert plain.model_version + "+pct" == encoder.model_version
    assert embedding_rows(plain).shape == (BASE_VOCAB, 384)
    assert torch.equal(embedding_rows(plain), embedding_rows(encoder)[:BASE_VOCAB])
