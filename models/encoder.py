"""The text encoder of the dual encoder: prompts in, L2-normalised embeddings out.

Loads a Hugging Face model directory offline (nothing is downloaded), on one of two paths:

- **native** (BERT encoders with a ``tokenizer.json``, such as the bundled all-MiniLM-L6-v2
  and the checkpoints ``feedline train dual-encoder`` writes): ``models.bert.BertEncoder`` and
  ``models.encoder_tokenizer.EncoderTokenizer``, on torch, ``safetensors`` and ``tokenizers``
  alone. ``import transformers`` takes 20+ seconds on a loaded 2-core machine, most of an
  embedding worker's or the query service's restart, for a forward pass of a few dozen lines;
  the native path computes the same embeddings (``tests/unit/models/test_bert.py``).
- **transformers** (everything else: decoder LLMs, other architectures, slow-only tokenizers,
  and training, which needs dropout and ``save_pretrained``): ``AutoModel`` and
  ``AutoTokenizer``, imported only on this path.

Encoder models (BERT-like) use mean pooling over the attention mask; decoder LLMs use the
last non-padding token. Forward passes are grouped into token-budget micro-batches.

``EncoderSettings.runtime`` picks what runs those passes: ``torch`` (the default), or, for a
native BERT encoder, ONNX Runtime on CPU, ``onnx`` (fp32, same ``model_version``) or
``onnx-int8`` (``model_version`` + ``+int8``); see ``models.onnx_runtime``. Tokenisation,
batching and the output contract are the same on every runtime.

Example::

    encoder = TextEncoder.load(EncoderSettings())
    vectors = encoder.encode(["post | format: text\\ntext: hello"])   # (1, 384) float32
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeAlias

import numpy as np
import torch

from models.bert import BertEncoder
from models.bert_config import BertConfig, UnsupportedModelError
from models.encoder_tokenizer import EncoderTokenizer
from models.errors import ModelLoadError
from models.hf_tokenizer import load_tokenizer
from models.model_dir import default_model_path
from models.pooling import pool
from models.settings import EncoderSettings, Pooling, Runtime, TorchDtype
from models.special_tokens import add_percentile_tokens, resize_for_new_tokens
from processors.batching import token_budget_batches

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from models.onnx_runtime import OnnxModel

__all__ = ["TextEncoder", "default_model_path", "load_tokenizer", "model_version", "pool"]
"""``default_model_path``, ``load_tokenizer`` and ``pool`` live in their own modules (so that
``models.onnx_graph`` and ``models.prompt_tokenizer`` need not import this one) and are
re-exported here, where callers have always found them."""

Backend = Literal["auto", "native", "transformers"]
"""``auto``: native when the directory is a supported BERT encoder, else transformers."""
EncoderModel: TypeAlias = "PreTrainedModel | BertEncoder"
EncoderTokenizerLike: TypeAlias = "PreTrainedTokenizerBase | EncoderTokenizer"

log = logging.getLogger(__name__)

ONEDNN_CACHE_ENV, ONEDNN_CACHE_CAPACITY = "ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64"
MODEL_CARD_FILE = "feedline_model.json"
"""Optional file in a model directory: ``{"model_version": "..."}`` written by training."""


class TextEncoder:
    """A loaded model + tokenizer. Thread-safe: calls are serialised by a lock (fast tokenizers
    refuse concurrent use, and parallel forward passes would only fight over the cores)."""

    def __init__(
        self,
        model: EncoderModel,
        tokenizer: EncoderTokenizerLike,
        settings: EncoderSettings,
        pooling: Pooling,
        model_version: str,
        onnx: OnnxModel | None = None,
    ) -> None:
        self.model = model
        """The torch module (kept on the ONNX runtimes too: ``dim``, ``backend``, re-export)."""
        self.onnx = onnx
        """The ONNX Runtime session that runs forward passes instead of ``model``, if any."""
        self.tokenizer = tokenizer
        self.settings = settings
        self.pooling = pooling
        self.model_version = model_version
        self.device = next(model.parameters()).device
        self.compute_dtype = compute_dtype(settings.torch_dtype, self.device)
        """What the torch runtime computes in (autocast); float32 means no autocast."""
        if self.compute_dtype != torch.float32 and self.device.type == "cpu":
            # CPU bfloat16 matmuls are oneDNN primitives, JIT-compiled and cached per shape;
            # prompts come in every (batch, length), so its default cache of 1,024 grew an
            # embedding worker from 1.2 to 2.8 GB. 64 keeps it at float32's size at the same
            # speed (recompiling is cheap). oneDNN reads this at its first primitive.
            os.environ.setdefault(ONEDNN_CACHE_ENV, ONEDNN_CACHE_CAPACITY)
        self.dim = int(model.config.hidden_size)
        self._lock = threading.Lock()
        self.tokens_encoded = 0
        """Prompt tokens run through the model since load (after truncation, before padding)."""

    @classmethod
    def load(cls, settings: EncoderSettings, backend: Backend = "auto") -> TextEncoder:
        """Load the configured model directory; raises ``ModelLoadError`` with the reason.

        ``backend="transformers"`` gives a transformers ``PreTrainedModel`` and tokenizer (what
        training needs); ``"native"`` raises ``UnsupportedModelError`` rather than fall back.
        The ONNX runtimes need the native path and export (or reuse) the ONNX file here.
        """
        path = settings.model_path or default_model_path()
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} is not a Hugging Face model directory (no config.json)")
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        loaded = _load_for_runtime(path, settings, backend)
        resize_for_new_tokens(loaded.model, loaded.tokenizer, loaded.new_tokens)
        module: torch.nn.Module = loaded.model
        module.to(_device(settings)).eval()
        version = encoder_version(path, loaded.new_tokens)
        onnx = None
        if settings.runtime != "torch":
            from models.onnx_runtime import load_onnx_model, runtime_version

            assert isinstance(loaded.model, BertEncoder)  # _load_for_runtime made sure
            onnx = load_onnx_model(
                loaded.model, loaded.tokenizer, loaded.pooling, version, settings
            )
            version = runtime_version(version, settings.runtime)
        log.info(
            "loaded encoder %s (%s on %s, %s pooling, dim %d)",
            version,
            type(module).__name__,
            settings.runtime,
            loaded.pooling,
            loaded.model.config.hidden_size,
        )
        return cls(loaded.model, loaded.tokenizer, settings, loaded.pooling, version, onnx)

    @property
    def backend(self) -> Literal["native", "transformers"]:
        """Which path loaded the model (see the module docstring)."""
        return "native" if isinstance(self.model, BertEncoder) else "transformers"

    @property
    def runtime(self) -> Runtime:
        """What runs the forward passes: ``torch``, ``onnx`` or ``onnx-int8``."""
        if self.onnx is None:
            return "torch"
        return "onnx-int8" if self.onnx.precision == "int8" else "onnx"

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text after truncation to ``max_length``."""
        with self._lock:
            return self._token_lengths(texts)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns ``(len(texts), dim)`` float32 rows of unit length."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            lengths = self._token_lengths(texts)
            self.tokens_encoded += sum(lengths)
            for batch in token_budget_batches(
                lengths, self.batch_max_tokens, self.settings.batch_max_items
            ):
                out[batch] = self._forward([texts[i] for i in batch])
        return out

    @property
    def batch_max_tokens(self) -> int:
        """Padded tokens per forward pass: the setting, capped lower on ONNX Runtime (see
        ``models.onnx_runtime``)."""
        if self.onnx is None:
            return self.settings.batch_max_tokens
        return min(self.settings.batch_max_tokens, self.onnx.batch_max_tokens)

    def _token_lengths(self, texts: Sequence[str]) -> list[int]:
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.settings.max_length)[
            "input_ids"
        ]
        return [len(ids) for ids in encoded]

    def _forward(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.settings.max_length,
            return_tensors="pt",
        )
        if self.onnx is not None:
            return self.onnx.run(batch)  # (B, D), pooled and normalised in the graph
        inputs = {name: tensor.to(self.device) for name, tensor in batch.items()}
        low_precision = self.compute_dtype != torch.float32
        with torch.autocast(self.device.type, self.compute_dtype, enabled=low_precision):
            hidden = self.model(**inputs).last_hidden_state  # (B, T, D)
        mask = inputs["attention_mask"]  # (B, T)
        pooled = pool(hidden.float(), mask, self.pooling)  # (B, D)
        return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()


class _Loaded(NamedTuple):
    """A model directory as one path loaded it, before resizing and moving to the device."""

    model: EncoderModel
    tokenizer: EncoderTokenizerLike
    new_tokens: list[str]
    """Percentile wrappers the tokenizer did not have (the embedding matrix grows by these)."""
    pooling: Pooling


def _load_for_runtime(path: Path, settings: EncoderSettings, backend: Backend) -> _Loaded:
    """``_load``, held to the native path when ``settings.runtime`` is an ONNX one (only
    ``BertEncoder`` is exported), with a ``ModelLoadError`` that says so otherwise."""
    if settings.runtime == "torch":
        return _load(path, settings, backend)
    advice = "use FEEDLINE_ENCODER_RUNTIME=torch for this model"
    if backend == "transformers":
        raise ModelLoadError(f"runtime {settings.runtime!r} runs the native path only; {advice}")
    try:
        return _load_native(path, settings)
    except UnsupportedModelError as error:
        raise ModelLoadError(
            f"runtime {settings.runtime!r} needs a BERT encoder the native path loads, "
            f"and {error}; {advice}"
        ) from error


def _load(path: Path, settings: EncoderSettings, backend: Backend) -> _Loaded:
    """The native path when ``backend`` allows and ``path`` supports it, else transformers."""
    if backend != "transformers":
        try:
            return _load_native(path, settings)
        except UnsupportedModelError as error:
            if backend == "native":
                raise
            log.info("%s; loading it with transformers", error)
    return _load_transformers(path, settings)


def _load_native(path: Path, settings: EncoderSettings) -> _Loaded:
    """``BertEncoder`` and ``EncoderTokenizer``; ``UnsupportedModelError`` if ``path`` is not a
    BERT encoder they reproduce exactly."""
    config = BertConfig.from_model_dir(path)
    tokenizer = EncoderTokenizer.from_model_dir(path)
    model = BertEncoder.from_model_dir(path, config)
    new_tokens = add_percentile_tokens(tokenizer) if settings.percentile_tokens else []
    pooling: Pooling = "mean" if settings.pooling == "auto" else settings.pooling
    return _Loaded(model, tokenizer, new_tokens, pooling)


def _load_transformers(path: Path, settings: EncoderSettings) -> _Loaded:
    """transformers' ``AutoModel`` and ``AutoTokenizer`` (imported here: they take seconds)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    is_decoder = bool(getattr(config, "is_decoder", False)) or _is_causal_lm(config)
    pooling: Pooling = settings.pooling
    if pooling == "auto":
        pooling = "last_token" if is_decoder else "mean"
    tokenizer, new_tokens = load_tokenizer(settings)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    return _Loaded(model, tokenizer, new_tokens, pooling)


def model_version(path: Path) -> str:
    """A stable version string for a model directory.

    Training writes ``feedline_model.json`` with an explicit version; otherwise the version is
    the directory name plus a hash of its config and the names and sizes of its files.
    """
    card = path / MODEL_CARD_FILE
    if card.exists():
        return str(json.loads(card.read_text())["model_version"])
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}:{file.stat().st_size}".encode())
    name = "all-MiniLM-L6-v2" if path == default_model_path() else path.name
    return f"{name}@{digest.hexdigest()[:12]}"


def encoder_version(path: Path, new_tokens: Sequence[str]) -> str:
    """The ``model_version`` of embeddings from ``path`` with ``new_tokens`` added (the
    percentile tokens change what the model computes, so they change the version)."""
    return model_version(path) + ("+pct" if new_tokens else "")


def _is_causal_lm(config: object) -> bool:
    architectures = getattr(config, "architectures", None) or []
    return any(a.endswith("ForCausalLM") for a in architectures)


BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
"""CPU flags under which oneDNN computes bfloat16 natively (``bench.embed_throughput``: 2.5x
sentence-transformers per token on a Xeon with AMX, 2.7x on a Zen 4 EPYC with AVX512-BF16,
against about 1.05x for float32 on both)."""


def compute_dtype(setting: TorchDtype, device: torch.device) -> torch.dtype:
    """The torch runtime's compute precision for ``setting`` on ``device`` (see
    ``EncoderSettings.torch_dtype``): ``auto`` is float16 on CUDA, bfloat16 on a CPU with
    bfloat16 instructions (AMX-BF16 tiles, or AVX512-BF16 dot products as on AMD Zen 4;
    elsewhere CPU bfloat16 is emulated and slower than float32), else float32."""
    if setting != "auto":
        return getattr(torch, setting)
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_flags() & BF16_CPU_FLAGS:
        return torch.bfloat16
    return torch.float32


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _device(settings: EncoderSettings) -> torch.device:
    if settings.runtime != "torch":
        if settings.device == "cuda":
            raise ModelLoadError(
                f"runtime {settings.runtime!r} runs on CPU; set FEEDLINE_ENCODER_DEVICE=cpu "
                "(or auto), or FEEDLINE_ENCODER_RUNTIME=torch for CUDA"
            )
        return torch.device("cpu")  # the torch module only feeds the export
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.device)
