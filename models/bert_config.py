"""The hyper-parameters of a BERT checkpoint, read from its ``config.json`` without transformers.

``BertConfig.from_model_dir`` accepts only what ``models.bert.BertEncoder`` computes exactly as
transformers' ``BertModel`` does, and raises ``UnsupportedModelError`` (saying why) for anything
else, so the caller can load that directory with transformers instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.errors import ModelLoadError

CONFIG_FILE = "config.json"
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
ENCODER_ARCHITECTURES = frozenset(
    {
        "BertModel",
        "BertForMaskedLM",
        "BertForPreTraining",
        "BertForSequenceClassification",
        "BertForTokenClassification",
        "BertForQuestionAnswering",
    }
)
"""Checkpoints whose ``bert.`` part is a plain, bidirectional ``BertModel``."""
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class UnsupportedModelError(ModelLoadError):
    """The directory is fine, but not a BERT encoder ``BertEncoder`` reproduces exactly."""


@dataclass(frozen=True)
class BertConfig:
    """The fields of transformers' ``BertConfig`` that inference depends on, with its defaults."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int | None = 0
    dtype: torch.dtype | None = None
    """The dtype ``config.json`` names; ``None``: the checkpoint's own (transformers' "auto")."""

    @classmethod
    def from_model_dir(cls, path: Path) -> BertConfig:
        """The config of model directory ``path``; raises ``UnsupportedModelError``."""
        raw: dict[str, Any] = json.loads((path / CONFIG_FILE).read_text())
        if reason := unsupported_reason(raw):
            raise UnsupportedModelError(f"{path}: {reason}")
        fields = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        dtype_name = raw.get("dtype") or raw.get("torch_dtype")
        fields["dtype"] = _DTYPES[dtype_name] if dtype_name else None
        config = cls(**fields)
        if config.hidden_size % config.num_attention_heads:
            raise UnsupportedModelError(
                f"{path}: hidden_size {config.hidden_size} is not a multiple of "
                f"num_attention_heads {config.num_attention_heads}"
            )
        return config


def unsupported_reason(raw: dict[str, Any]) -> str | None:
    """Why ``BertEncoder`` cannot run the model of config ``raw``; ``None`` when it can."""
    architectures = raw.get("architectures") or []
    checks = [
        (raw.get("model_type") != "bert", f"model_type is {raw.get('model_type')!r}, not 'bert'"),
        (
            any(a not in ENCODER_ARCHITECTURES for a in architectures),
            f"architectures {architectures} are not all BERT encoders",
        ),
        (bool(raw.get("is_decoder")), "it is a decoder (is_decoder)"),
        ("quantization_config" in raw, "it is quantised"),
        (bool(raw.get("add_cross_attention")), "it has cross-attention"),
        (
            raw.get("position_embedding_type", "absolute") != "absolute",
            f"position_embedding_type is {raw.get('position_embedding_type')!r}",
        ),
        (
            raw.get("hidden_act", "gelu") not in SUPPORTED_ACTIVATIONS,
            f"hidden_act {raw.get('hidden_act')!r} is not one of {SUPPORTED_ACTIVATIONS}",
        ),
        (
            (raw.get("dtype") or raw.get("torch_dtype") or "float32") not in _DTYPES,
            f"dtype {raw.get('dtype') or raw.get('torch_dtype')!r} is not float32/16 or bfloat16",
        ),
    ]
    return next((reason for failed, reason in checks if failed), None)
