"""``models.encoder``: the text encoder on the bundled MiniLM and on a tiny decoder LLM."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from models import (
    EncoderSettings,
    ModelLoadError,
    TextEncoder,
    default_model_path,
    model_version,
    pool,
)
from models import encoder as encoder_module
from models.encoder import MODEL_CARD_FILE
from tests.tiny_models import save_tiny_model

TEXTS = [
    "post | format: text\ntext: How we cut Kafka consumer lag in half",
    "member\nheadline: Pastry chef",
    "a",
    "post | format: article\ntext: " + "streaming embeddings and vector search " * 30,
    "Transformers for recommendation: a survey of generative retrieval",
    "",
    "emoji 😀 and 机器学习",
]


@pytest.fixture(scope="module")
def encoder() -> Iterator[TextEncoder]:
    yield TextEncoder.load(EncoderSettings())


# --- the default model ---------------------------------------------------------------------


def test_default_model_shape_and_version(encoder: TextEncoder) -> None:
    assert encoder.dim == 384
    assert encoder.pooling == "mean"
    assert encoder.model_version.startswith("all-MiniLM-L6-v2@")
    assert encoder.model_version.endswith("+pct")  # the percentile tokens were added
    assert len(encoder.model_version.removesuffix("+pct").split("@")[1]) == 12
    assert model_version(default_model_path()) + "+pct" == encoder.model_version


def test_rows_are_unit_length_float32(encoder: TextEncoder) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encoding_is_deterministic(encoder: TextEncoder) -> None:
    assert np.array_equal(encoder.encode(TEXTS), encoder.encode(TEXTS))


def test_empty_input_gives_an_empty_matrix(encoder: TextEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


def test_token_budget_batching_matches_one_at_a_time(encoder: TextEncoder) -> None:
    small = TextEncoder(
        encoder.model,
        encoder.tokenizer,
        EncoderSettings(batch_max_tokens=64, batch_max_items=2),
        encoder.pooling,
        encoder.model_version,
    )
    lengths = small.token_lengths(TEXTS)
    assert max(lengths) > 64  # at least one oversize prompt travels alone
    batched = small.encode(TEXTS)
    single = np.vstack([encoder.encode([text]) for text in TEXTS])
    all_at_once = encoder.encode(TEXTS)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(all_at_once, single, atol=1e-5)


def test_small_budget_from_settings_loads_and_matches(encoder: TextEncoder) -> None:
    loaded = TextEncoder.load(EncoderSettings(batch_max_tokens=64, batch_max_items=1))
    assert loaded.settings.batch_max_tokens == 64
    assert loaded.model_version == encoder.model_version
    np.testing.assert_allclose(loaded.encode(TEXTS), encoder.encode(TEXTS), atol=1e-5)


def test_tokens_encoded_counts_truncated_prompt_tokens(encoder: TextEncoder) -> None:
    counter = TextEncoder(encoder.model, encoder.tokenizer, EncoderSettings(), "mean", "v")
    assert counter.tokens_encoded == 0
    counter.encode(["hello world", "word " * 1_000])
    assert counter.tokens_encoded == 4 + 256  # [CLS] hello world [SEP]; the other is truncated
    counter.encode(["hello world"])
    assert counter.tokens_encoded == 264


def test_token_lengths_are_truncated_to_max_length(encoder: TextEncoder) -> None:
    short = TextEncoder(
        encoder.model, encoder.tokenizer, EncoderSettings(max_length=16), "mean", "v"
    )
    lengths = short.token_lengths(["hello world", "word " * 100])
    assert lengths == [4, 16]  # [CLS] hello world [SEP]; the long one is cut
    assert encoder.token_lengths(["word " * 1_000]) == [256]


def test_similar_texts_are_closer_than_unrelated(encoder: TextEncoder) -> None:
    kafka, kafka2, cake = encoder.encode(
        [
            "Tuning Apache Kafka consumers to reduce lag",
            "How to lower consumer lag in Kafka streaming pipelines",
            "A recipe for chocolate layer cake with buttercream",
        ]
    )
    assert float(kafka @ kafka2) > float(kafka @ cake) + 0.3
    assert float(kafka2 @ kafka) > float(kafka2 @ cake) + 0.3


# --- pooling -------------------------------------------------------------------------------


def hidden_states() -> torch.Tensor:
    return torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B, T, D)


def test_mean_pooling_ignores_padding() -> None:
    hidden = hidden_states()
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = pool(hidden, mask, "mean")
    assert pooled.shape == (2, 3)
    assert torch.equal(pooled[0], hidden[0, :2].mean(dim=0))
    assert torch.equal(pooled[1], hidden[1].mean(dim=0))
    garbage = hidden.clone()
    garbage[0, 2:] = 1e6  # padding positions hold anything
    assert torch.equal(pool(garbage, mask, "mean"), pooled)


def test_mean_pooling_of_a_fully_masked_row_is_zero_not_nan() -> None:
    pooled = pool(hidden_states(), torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0]]), "mean")
    assert torch.equal(pooled[0], torch.zeros(3))
    assert torch.equal(pooled[1], hidden_states()[1, 0])


def test_last_token_pooling_with_right_padding() -> None:
    hidden = hidden_states()
    pooled = pool(hidden, torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]]), "last_token")
    assert torch.equal(pooled, torch.stack([hidden[0, 2], hidden[1, 0]]))


def test_last_token_pooling_with_left_padding() -> None:
    hidden = hidden_states()
    pooled = pool(hidden, torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]]), "last_token")
    assert torch.equal(pooled, torch.stack([hidden[0, 3], hidden[1, 3]]))


def test_last_token_pooling_without_padding() -> None:
    hidden = hidden_states()
    pooled = pool(hidden, torch.ones(2, 4, dtype=torch.long), "last_token")
    assert torch.equal(pooled, hidden[:, 3])


# --- loading -------------------------------------------------------------------------------


def test_directory_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is not a Hugging Face model directory"):
        TextEncoder.load(EncoderSettings(model_path=tmp_path))


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        TextEncoder.load(EncoderSettings(model_path=tmp_path / "absent"))


def test_model_card_version_wins(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / MODEL_CARD_FILE).write_text('{"model_version": "dual-encoder-2026.1"}')
    assert model_version(tmp_path) == "dual-encoder-2026.1"


def test_hash_version_changes_with_the_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    first = model_version(tmp_path)
    assert first.startswith(f"{tmp_path.name}@")
    assert model_version(tmp_path) == first
    (tmp_path / "weights.bin").write_bytes(b"1234")
    second = model_version(tmp_path)
    assert second != first
    (tmp_path / "config.json").write_text('{"hidden_size": 9}')
    assert model_version(tmp_path) not in (first, second)


# --- decoder LLM path ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


def test_decoder_model_uses_last_token_pooling(tiny_llama: Path) -> None:
    decoder = TextEncoder.load(EncoderSettings(model_path=tiny_llama, device="cpu"))
    assert decoder.tokenizer.vocab_size == 30_522
    assert decoder.pooling == "last_token"
    assert decoder.dim == 32
    assert decoder.model_version.startswith(f"{tiny_llama.name}@")
    vectors = decoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    single = np.vstack([decoder.encode([text]) for text in TEXTS])
    np.testing.assert_allclose(vectors, single, atol=1e-5)  # padding never reaches the pool


def test_pooling_setting_overrides_auto(tiny_llama: Path) -> None:
    decoder = TextEncoder.load(EncoderSettings(model_path=tiny_llama, pooling="mean"))
    assert decoder.pooling == "mean"
    assert decoder.encode(["hello"]).shape == (1, 32)


# --- compute precision ---------------------------------------------------------------------


def test_bfloat16_autocast_keeps_the_embeddings_and_the_version(encoder: TextEncoder) -> None:
    """bfloat16 (the default on CPUs with AMX) must be interchangeable with float32: it keeps
    the model_version, so the index mixes its vectors with float32 ones."""
    assert encoder.compute_dtype == torch.float32  # tests/conftest.py pins float32
    bf16 = TextEncoder.load(EncoderSettings(torch_dtype="bfloat16"))
    assert bf16.compute_dtype == torch.bfloat16
    assert bf16.model_version == encoder.model_version
    ours, reference = bf16.encode(TEXTS), encoder.encode(TEXTS)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines
    assert not np.array_equal(ours, reference)  # it did compute in bfloat16
    assert encoder_module.ONEDNN_CACHE_ENV in os.environ  # oneDNN's shape cache bounded


@pytest.mark.parametrize(
    ("setting", "device", "flags", "expected"),
    [
        ("auto", "cpu", {"avx512f", "amx_bf16", "amx_tile"}, torch.bfloat16),
        ("auto", "cpu", {"avx512f", "avx512_bf16"}, torch.bfloat16),
        ("auto", "cpu", {"avx2", "avx512f"}, torch.float32),
        ("auto", "cuda", set(), torch.float16),
        ("float32", "cpu", {"amx_bf16"}, torch.float32),
        ("float16", "cpu", set(), torch.float16),
        ("bfloat16", "cuda", set(), torch.bfloat16),
    ],
)
def test_auto_precision_follows_the_hardware(
    setting: str,
    device: str,
    flags: set[str],
    expected: torch.dtype,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(encoder_module, "cpu_flags", lambda: frozenset(flags))
    assert encoder_module.compute_dtype(setting, torch.device(device)) == expected  # type: ignore[arg-type]


def test_cpu_flags_read_proc_cpuinfo() -> None:
    flags = encoder_module.cpu_flags()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "\nflags" in cpuinfo.read_text():  # x86 Linux
        assert "fpu" in flags  # every x86 CPU has it


@pytest.mark.parametrize("bad", ["fp8", "int8", "", "Float32"])
def test_an_unknown_precision_is_refused_with_the_setting_named(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDLINE_ENCODER_TORCH_DTYPE", bad)
    with pytest.raises(ValueError, match="torch_dtype"):
        EncoderSettings()


# --- CUDA (the device tool; skipped elsewhere) ---------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(
    ("setting", "expected", "least_cosine"),
    [
        ("auto", torch.float16, 0.9995),
        ("bfloat16", torch.bfloat16, 0.995),
        ("float32", torch.float32, 0.99999),
    ],
)
def test_cuda_embeds_what_cpu_float32_embeds(
    encoder: TextEncoder, setting: str, expected: torch.dtype, least_cosine: float
) -> None:
    """On CUDA (float16 autocast by default) the encoder keeps the model_version, the
    percentile tokens and the embeddings of CPU float32, batch by token budget as on CPU."""
    cuda = TextEncoder.load(EncoderSettings(device="cuda", torch_dtype=setting))
    assert cuda.device.type == "cuda" and cuda.compute_dtype == expected
    assert cuda.model_version == encoder.model_version
    texts = [*TEXTS, "post\nviews: <view_pct>p90</view_pct>"] * 9  # several batches
    small = TextEncoder.load(
        EncoderSettings(device="cuda", torch_dtype=setting, batch_max_tokens=256)
    )
    ours, reference = cuda.encode(texts), encoder.encode(texts)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= least_cosine, cosines
    np.testing.assert_allclose(small.encode(texts), ours, atol=2e-3)
