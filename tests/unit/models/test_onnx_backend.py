"""``models.onnx_export`` and ``models.onnx_runtime``: the encoder on ONNX Runtime, fp32 and
int8, against the torch path on real prompts of a synthetic world.

The export runs once per module (10–40 s on a loaded 2-core CPU) into a pytest temporary
cache, never the user's real one.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from feedline.world import WorldConfig, generate_world
from feedline.world_prompts import member_inputs, post_inputs
from models import EncoderSettings, ModelLoadError, TextEncoder, default_model_path, onnx_export
from models.encoder import MODEL_CARD_FILE
from models.onnx_export import atomic_file, export_fp32, onnx_path
from models.onnx_runtime import usable_cores
from models.prompt_tokenizer import load_prompt_tokenizer
from processors.prompts import PromptConfig, PromptLibrary
from processors.token_budget import TokenMeter

EDGE_CASES = ["a", "", "hello", "<view_pct>87</view_pct> emoji 😀 and 机器学习"]
"""Texts no prompt looks like: a few tokens, so quantisation error does not average out."""


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    """28 post and 14 member prompts of a synthetic world (percentile tokens, histories)."""
    library = PromptLibrary(PromptConfig(), TokenMeter(load_prompt_tokenizer(EncoderSettings())))
    world = generate_world(WorldConfig(members=14, authors=6, posts=28))
    posts = [library.render_post(*inputs) for inputs in post_inputs(world).values()]
    members = [library.render_member(*inputs) for inputs in member_inputs(world, library).values()]
    return [*posts, *members]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def torch_encoder() -> TextEncoder:
    return TextEncoder.load(EncoderSettings(device="cpu"))


@pytest.fixture(scope="module")
def onnx_encoder(cache: Path) -> TextEncoder:
    return TextEncoder.load(EncoderSettings(runtime="onnx", onnx_cache_dir=cache))


@pytest.fixture(scope="module")
def int8_encoder(cache: Path, onnx_encoder: TextEncoder) -> TextEncoder:
    return TextEncoder.load(EncoderSettings(runtime="onnx-int8", onnx_cache_dir=cache))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


# --- quality -------------------------------------------------------------------------------


def test_prompts_carry_percentile_tokens(prompts: list[str], onnx_encoder: TextEncoder) -> None:
    assert sum("<view_pct>" in p for p in prompts) >= 28
    ids = onnx_encoder.tokenizer(prompts[0])["input_ids"]
    assert onnx_encoder.tokenizer.convert_tokens_to_ids("<view_pct>") in ids


def test_fp32_matches_torch(
    prompts: list[str], torch_encoder: TextEncoder, onnx_encoder: TextEncoder
) -> None:
    texts = [*prompts, *EDGE_CASES]
    ours = onnx_encoder.encode(texts)
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert cosines(ours, torch_encoder.encode(texts)).min() >= 0.9999


def test_int8_stays_close_to_torch(
    prompts: list[str], torch_encoder: TextEncoder, int8_encoder: TextEncoder
) -> None:
    ours = int8_encoder.encode(prompts)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    similarity = cosines(ours, torch_encoder.encode(prompts))
    assert similarity.mean() >= 0.99, similarity.mean()
    assert similarity.min() >= 0.98, similarity.min()
    # Texts of a few tokens lose more (about 0.97 for "" or "hello"): still the same neighbours.
    short = cosines(int8_encoder.encode(EDGE_CASES), torch_encoder.encode(EDGE_CASES))
    assert short.min() >= 0.95, short


def test_batching_and_counters_match_torch(
    prompts: list[str], torch_encoder: TextEncoder, onnx_encoder: TextEncoder
) -> None:
    prompts = [*EDGE_CASES, *prompts]
    before = onnx_encoder.tokens_encoded
    onnx_encoder.encode(prompts[:5])
    assert onnx_encoder.tokens_encoded - before == sum(torch_encoder.token_lengths(prompts[:5]))
    assert onnx_encoder.token_lengths(prompts) == torch_encoder.token_lengths(prompts)
    assert onnx_encoder.encode([]).shape == (0, 384)
    small = TextEncoder(
        onnx_encoder.model,
        onnx_encoder.tokenizer,
        EncoderSettings(batch_max_tokens=64, batch_max_items=2),
        onnx_encoder.pooling,
        onnx_encoder.model_version,
        onnx_encoder.onnx,
    )
    assert cosines(small.encode(prompts[:6]), onnx_encoder.encode(prompts[:6])).min() >= 0.9999


def test_onnx_passes_are_capped_for_cpu(
    torch_encoder: TextEncoder, onnx_encoder: TextEncoder, int8_encoder: TextEncoder
) -> None:
    assert torch_encoder.batch_max_tokens == EncoderSettings().batch_max_tokens
    assert onnx_encoder.batch_max_tokens == int8_encoder.batch_max_tokens == 1024
    small = EncoderSettings(batch_max_tokens=512)
    capped = TextEncoder(
        onnx_encoder.model, onnx_encoder.tokenizer, small, "mean", "v", onnx_encoder.onnx
    )
    assert capped.batch_max_tokens == 512  # a lower setting still wins


# --- versions and API ----------------------------------------------------------------------


def test_model_versions(
    torch_encoder: TextEncoder, onnx_encoder: TextEncoder, int8_encoder: TextEncoder
) -> None:
    assert onnx_encoder.model_version == torch_encoder.model_version
    assert int8_encoder.model_version == torch_encoder.model_version + "+int8"
    assert (torch_encoder.runtime, onnx_encoder.runtime, int8_encoder.runtime) == (
        "torch",
        "onnx",
        "onnx-int8",
    )
    for encoder in (onnx_encoder, int8_encoder):
        assert encoder.backend == "native" and encoder.dim == 384
        assert encoder.device.type == "cpu"


# --- the cache -----------------------------------------------------------------------------


def test_files_are_cached_per_model_version(cache: Path, int8_encoder: TextEncoder) -> None:
    folder = cache / int8_encoder.model_version.removesuffix("+int8")
    assert sorted(p.name for p in folder.iterdir()) == ["fp32.r1.onnx", "int8.r1.onnx"]


def test_attention_is_one_fused_node_per_layer(cache: Path, onnx_encoder: TextEncoder) -> None:
    import onnx

    graph = onnx.load(str(onnx_path(cache, onnx_encoder.model_version, "fp32", "mean"))).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("MultiHeadAttention") == onnx_encoder.model.config.num_hidden_layers
    assert "Softmax" not in ops and "Where" not in ops


def test_cache_paths_stay_one_folder_per_version(tmp_path: Path) -> None:
    assert onnx_path(tmp_path, "org/model@1", "int8", "mean") == (
        tmp_path / "org_model@1" / "int8.r1.onnx"
    )
    assert onnx_path(tmp_path, "v", "fp32", "last_token").name == "fp32.last_token.r1.onnx"
    with pytest.raises(ModelLoadError, match="cache folder"):
        onnx_path(tmp_path, "..", "fp32", "mean")


def test_second_load_reuses_the_cache(
    cache: Path, int8_encoder: TextEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = sorted(cache.rglob("*.onnx"))
    stamps = [f.stat().st_mtime_ns for f in files]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again although the cache has the file")

    monkeypatch.setattr(onnx_export, "export_fp32", refuse)
    monkeypatch.setattr(onnx_export, "quantize_int8", refuse)
    again = TextEncoder.load(EncoderSettings(runtime="onnx-int8", onnx_cache_dir=cache))
    assert again.model_version == int8_encoder.model_version
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_failed_export_leaves_no_file(
    tmp_path: Path, torch_encoder: TextEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter dies after writing part of the file: nothing is left under either name."""

    class HalfWritten:
        def save(self, destination: str, **kwargs: object) -> None:
            Path(destination).write_bytes(b"\x08\x07half a protobuf")
            raise OSError("disk full")

    import torch.onnx

    monkeypatch.setattr(torch.onnx, "export", lambda *args, **kwargs: HalfWritten())
    target = tmp_path / "v1" / "fp32.r1.onnx"
    with pytest.raises(OSError, match="disk full"):
        export_fp32(torch_encoder.model, "mean", target, torch_encoder.tokenizer)  # type: ignore[arg-type]
    assert list(target.parent.iterdir()) == []


def test_atomic_file_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as temporary:
        temporary.write_bytes(b"new, half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_file(target) as temporary:
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [target]


def test_quantization_import_leaves_sys_path_alone(int8_encoder: TextEncoder) -> None:
    """onnxruntime.transformers appends a folder holding its own ``models`` package."""
    assert not any(p.rstrip("/").endswith("onnxruntime/transformers") for p in sys.path)
    import models

    assert Path(models.__file__).resolve().parent == Path(__file__).resolve().parents[3] / "models"


# --- checkpoints and refusals --------------------------------------------------------------


def test_trained_checkpoint_exports_reproducibly_under_its_card_version(
    tmp_path: Path, cache: Path, torch_encoder: TextEncoder, onnx_encoder: TextEncoder
) -> None:
    """A ``feedline train dual-encoder`` directory (a model card naming its version) loads
    through the native path and exports the same way; here it holds the bundled weights, so
    the fresh export must equal the module fixture's byte for byte."""
    checkpoint = tmp_path / "dual"
    checkpoint.mkdir()
    for file in default_model_path().iterdir():
        if file.is_file():
            (checkpoint / file.name).symlink_to(file)
    (checkpoint / MODEL_CARD_FILE).write_text(json.dumps({"model_version": "dual@test"}))
    fresh = tmp_path / "cache"
    encoder = TextEncoder.load(
        EncoderSettings(model_path=checkpoint, runtime="onnx", onnx_cache_dir=fresh)
    )
    assert encoder.model_version == "dual@test+pct"
    exported = onnx_path(fresh, "dual@test+pct", "fp32", "mean")
    first = onnx_path(cache, onnx_encoder.model_version, "fp32", "mean")
    assert digest(exported) == digest(first)
    texts = ["member | headline: Pastry chef", "post | <like_pct>12</like_pct> kafka"]
    assert cosines(encoder.encode(texts), torch_encoder.encode(texts)).min() >= 0.9999


def digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def test_a_non_native_model_is_refused(tmp_path: Path) -> None:
    llm = tmp_path / "llm"
    llm.mkdir()
    (llm / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    (llm / "tokenizer.json").symlink_to(default_model_path() / "tokenizer.json")
    settings = EncoderSettings(model_path=llm, runtime="onnx", onnx_cache_dir=tmp_path / "c")
    with pytest.raises(ModelLoadError, match="FEEDLINE_ENCODER_RUNTIME=torch"):
        TextEncoder.load(settings)
    with pytest.raises(ModelLoadError, match="native path only"):
        TextEncoder.load(EncoderSettings(runtime="onnx-int8"), backend="transformers")
    with pytest.raises(ModelLoadError, match="runs on CPU"):
        TextEncoder.load(EncoderSettings(runtime="onnx", device="cuda", onnx_cache_dir=llm))


# --- settings ------------------------------------------------------------------------------


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEEDLINE_ENCODER_RUNTIME", "onnx-int8")
    monkeypatch.setenv("FEEDLINE_ENCODER_ONNX_THREADS", "3")
    monkeypatch.setenv("FEEDLINE_ENCODER_ONNX_CACHE_DIR", str(tmp_path))
    settings = EncoderSettings()
    assert (settings.runtime, settings.onnx_threads) == ("onnx-int8", 3)
    assert settings.onnx_cache() == tmp_path
    monkeypatch.setenv("FEEDLINE_ENCODER_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match="runtime"):
        EncoderSettings()


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RUNTIME", "ONNX_THREADS", "ONNX_CACHE_DIR"):
        monkeypatch.delenv(f"FEEDLINE_ENCODER_{name}", raising=False)
    settings = EncoderSettings()
    assert (settings.runtime, settings.onnx_threads, settings.onnx_cache_dir) == ("torch", 0, None)
    assert settings.onnx_cache() == Path.home() / ".cache" / "feedline" / "onnx"
    assert usable_cores() == len(os.sched_getaffinity(0)) >= 1


def test_session_uses_the_configured_threads(
    cache: Path, onnx_encoder: TextEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime

    seen: list[int] = []
    real = onnxruntime.InferenceSession

    def spy(path: str, options: onnxruntime.SessionOptions, **kwargs: object) -> object:
        seen.append(options.intra_op_num_threads)
        return real(path, options, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    TextEncoder.load(EncoderSettings(runtime="onnx", onnx_threads=1, onnx_cache_dir=cache))
    TextEncoder.load(EncoderSettings(runtime="onnx", onnx_cache_dir=cache))
    assert seen == [1, usable_cores()]


@pytest.fixture(autouse=True)
def _no_real_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Any load that forgot ``onnx_cache_dir`` lands under a temporary home, not the user's."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield
