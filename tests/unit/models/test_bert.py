"""``models.bert``: the native BERT encoder embeds exactly as transformers' ``BertModel`` does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models import EncoderSettings, TextEncoder
from models.bert import BertEncoder
from models.bert_config import UnsupportedModelError, unsupported_reason
from models.encoder import default_model_path
from models.encoder_tokenizer import EncoderTokenizer
from tests.tiny_models import save_tiny_model

TEXTS = [
    "post | format: text\ntext: How we cut Kafka consumer lag in half",
    "member | headline: Pastry chef\nskills: Baking, Lamination, Food Safety",
    "a",
    "",
    "post | format: article\ntext: " + "streaming embeddings and vector search " * 40,  # > 128
    "engagement: views <view_pct>71</view_pct> | likes <like_pct>3</like_pct>",
    "<follower_pct>100</follower_pct><share_pct>1</share_pct>[SEP] [PAD] tail",
    "Ünïcödé — ellipsis… emoji 😀 and 机器学习",
]


def assert_same_embeddings(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.float32
    assert float((ours * theirs).sum(axis=1).min()) >= 0.99999
    assert float(np.abs(ours - theirs).max()) < 1e-5


@pytest.fixture(scope="module", params=[True, False], ids=["pct", "no-pct"])
def pair(request: pytest.FixtureRequest) -> tuple[TextEncoder, TextEncoder]:
    """(native, transformers) encoders of the bundled MiniLM, percentile tokens on or off."""
    settings = EncoderSettings(percentile_tokens=request.param, device="cpu", max_length=128)
    return TextEncoder.load(settings), TextEncoder.load(settings, backend="transformers")


# --- the bundled MiniLM ----------------------------------------------------------------------


def test_the_bundled_model_loads_natively(pair: tuple[TextEncoder, TextEncoder]) -> None:
    native, reference = pair
    assert isinstance(native.model, BertEncoder) and native.backend == "native"
    assert reference.backend == "transformers"
    assert native.model_version == reference.model_version
    assert (native.dim, native.pooling, native.device) == (384, "mean", reference.device)


def test_embeddings_equal_transformers(pair: tuple[TextEncoder, TextEncoder]) -> None:
    native, reference = pair
    assert_same_embeddings(native.encode(TEXTS), reference.encode(TEXTS))
    short = [text for text in TEXTS if len(text) < 200]
    single = np.vstack([native.encode([text]) for text in short])  # nothing padded: no mask
    assert_same_embeddings(single, reference.encode(short))


def test_tokens_equal_transformers(pair: tuple[TextEncoder, TextEncoder]) -> None:
    native, reference = pair
    assert native.token_lengths(TEXTS) == reference.token_lengths(TEXTS)
    assert max(native.token_lengths(TEXTS)) == 128  # the long text is truncated
    ours, theirs = (
        encoder.tokenizer(TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")
        for encoder in pair
    )
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        assert torch.equal(ours[name], theirs[name]), name
    assert len(native.tokenizer) == len(reference.tokenizer)
    assert native.tokenizer.tokenize(TEXTS[5]) == reference.tokenizer.tokenize(TEXTS[5])


def test_embedding_matrices_are_equal(pair: tuple[TextEncoder, TextEncoder]) -> None:
    ours, theirs = (encoder.model.get_input_embeddings() for encoder in pair)
    assert isinstance(ours, torch.nn.Embedding) and isinstance(theirs, torch.nn.Embedding)
    assert torch.equal(ours.weight, theirs.weight)  # percentile rows initialised alike


def test_tokens_encoded_counts_alike(pair: tuple[TextEncoder, TextEncoder]) -> None:
    native, reference = pair
    before = native.tokens_encoded, reference.tokens_encoded
    native.encode(TEXTS[:3])
    reference.encode(TEXTS[:3])
    assert native.tokens_encoded - before[0] == reference.tokens_encoded - before[1] > 0


def test_serving_never_imports_transformers() -> None:
    code = (
        "import sys; from models.encoder import TextEncoder; from models.settings import "
        "EncoderSettings; e = TextEncoder.load(EncoderSettings(device='cpu')); "
        "e.encode(['post | text: <view_pct>71</view_pct>']); "
        "print(e.backend, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["native", "False"]


# --- tiny BERTs with other settings ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert")


def edited(source: Path, target: Path, **config: object) -> Path:
    """A copy of model directory ``source`` in ``target`` with ``config.json`` edited."""
    target.mkdir()
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    raw = json.loads((source / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**raw, **config}))
    return target


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"])
def test_activations_equal_transformers(tiny_bert: Path, tmp_path: Path, act: str) -> None:
    model_dir = edited(tiny_bert, tmp_path / act, hidden_act=act, layer_norm_eps=1e-5)
    settings = EncoderSettings(model_path=model_dir, device="cpu", max_length=32)
    native = TextEncoder.load(settings, backend="native")
    assert (native.model.config.hidden_act, native.model.config.layer_norm_eps) == (act, 1e-5)
    reference = TextEncoder.load(settings, backend="transformers")
    assert_same_embeddings(native.encode(TEXTS), reference.encode(TEXTS))


def test_a_masked_lm_checkpoint_loads_its_bert_part(tmp_path: Path) -> None:
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    config = HFBertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64)  # fmt: skip
    BertForMaskedLM(config).save_pretrained(tmp_path)
    # a masked LM's directory has no tokenizer of its own here: use the bundled one
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((default_model_path() / name).read_bytes())
    settings = EncoderSettings(model_path=tmp_path, device="cpu", max_length=32)
    native = TextEncoder.load(settings, backend="native")
    reference = TextEncoder.load(settings, backend="transformers")
    assert_same_embeddings(native.encode(TEXTS), reference.encode(TEXTS))


def test_an_unsupported_bert_falls_back_to_transformers(tiny_bert: Path, tmp_path: Path) -> None:
    model_dir = edited(tiny_bert, tmp_path / "silu", hidden_act="silu")
    settings = EncoderSettings(model_path=model_dir, device="cpu")
    with pytest.raises(UnsupportedModelError, match="hidden_act 'silu'"):
        TextEncoder.load(settings, backend="native")
    assert TextEncoder.load(settings).backend == "transformers"


def test_a_directory_without_tokenizer_json_falls_back(tiny_bert: Path, tmp_path: Path) -> None:
    model_dir = edited(tiny_bert, tmp_path / "slow")
    (model_dir / "tokenizer.json").unlink()
    (model_dir / "vocab.txt").write_bytes((default_model_path() / "vocab.txt").read_bytes())
    with pytest.raises(UnsupportedModelError, match=r"no tokenizer\.json"):
        EncoderTokenizer.from_model_dir(model_dir)
    encoder = TextEncoder.load(EncoderSettings(model_path=model_dir, device="cpu"))
    assert encoder.backend == "transformers"


def test_missing_weights_are_refused(tiny_bert: Path, tmp_path: Path) -> None:
    model_dir = edited(tiny_bert, tmp_path / "deeper", num_hidden_layers=2)
    with pytest.raises(UnsupportedModelError, match=r"lacks weights.*encoder\.layer\.1\."):
        BertEncoder.from_model_dir(model_dir)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model_type": "llama"}, "model_type is 'llama'"),
        ({"architectures": ["BertLMHeadModel"]}, "not all BERT encoders"),
        ({"is_decoder": True}, "decoder"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"dtype": "int8"}, "dtype 'int8'"),
    ],
)
def test_unsupported_configs_say_why(change: dict[str, object], reason: str) -> None:
    raw = json.loads((default_model_path() / "config.json").read_text())
    assert unsupported_reason(raw) is None
    assert reason in (unsupported_reason({**raw, **change}) or "")


def test_resizing_keeps_the_old_rows(tiny_bert: Path) -> None:
    model = BertEncoder.from_model_dir(tiny_bert)
    before = model.get_input_embeddings().weight.detach().clone()  # (V, D)
    model.resize_token_embeddings(before.shape[0] + 3)
    after = model.get_input_embeddings().weight
    assert after.shape == (before.shape[0] + 3, before.shape[1])
    assert torch.equal(after[: before.shape[0]], before)
    assert model.config.vocab_size == before.shape[0] + 3
