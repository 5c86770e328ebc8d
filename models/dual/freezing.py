"""Freeze the bottom of an encoder for cheaper fine-tuning on CPU: the input embeddings and
the first ``N`` transformer layers stop learning (``requires_grad`` False).

The percentile special tokens (``models.special_tokens``) are rows of the input embedding
matrix and have no meaning until trained, so their rows stay trainable: the matrix keeps
``requires_grad`` and a gradient hook zeroes the gradient of every other row. Two costs
follow. The backward pass still runs through the frozen layers to reach those rows (what
freezing saves is the frozen layers' weight gradients and their optimiser updates), and
AdamW's decoupled weight decay would shrink every row of the matrix, so the trainer puts it
in the group without weight decay (``Frozen.partial``).

Example::

    frozen = freeze_bottom(model, 4, trainable_rows=[30522, 30523])
    frozen.parameters      # elements that no longer learn
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from models.errors import ModelError

LAYER_PATHS = (
    "encoder.layer",  # BERT, RoBERTa, MiniLM
    "layers",  # LLaMA, Mistral, Qwen, Gemma
    "transformer.layer",  # DistilBERT
    "h",  # GPT-2
    "encoder.layers",
    "decoder.layers",
    "block",  # T5 stacks
)
"""Where bare ``AutoModel`` classes keep their ``nn.ModuleList`` of transformer layers."""

EMBEDDING_PATHS = ("embeddings", "embed_positions", "wpe")
"""Embedding modules besides the token matrix (BERT's also hold positions and a LayerNorm)."""


class FreezeError(ModelError):
    """``freeze_layers`` cannot be applied to this model."""


class Frozen(NamedTuple):
    """What ``freeze_bottom`` froze."""

    parameters: int
    """Parameter elements that no longer learn (the kept token rows not counted as frozen)."""
    partial: torch.Tensor | None
    """The input embedding matrix when only its ``trainable_rows`` learn, else None."""


def freeze_bottom(model: nn.Module, layers: int, trainable_rows: Sequence[int]) -> Frozen:
    """Freeze the embeddings and ``layers[:layers]`` of ``model``; 0 freezes nothing.

    ``trainable_rows`` are ids of input embedding rows that keep learning. Raises
    ``FreezeError`` when the layers cannot be found or there are fewer than ``layers``.
    """
    if layers <= 0:
        return Frozen(0, None)
    blocks = transformer_layers(model)
    if layers > len(blocks):
        raise FreezeError(
            f"freeze_layers={layers}, but {type(model).__name__} has {len(blocks)} transformer "
            f"layers; use at most {len(blocks)}"
        )
    matrix = _input_embeddings(model)
    modules = [matrix, *_embedding_modules(model), *blocks[:layers]]
    for module in modules:
        module.requires_grad_(False)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    if not trainable_rows:
        return Frozen(frozen, None)
    weight = matrix.weight  # (V, D)
    weight.requires_grad_(True)
    keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)  # (V, 1)
    keep[list(trainable_rows)] = 1.0
    weight.register_hook(lambda grad: grad * keep.to(grad.dtype))
    kept = len(set(trainable_rows)) * weight.shape[1]
    return Frozen(frozen - kept, weight)


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The model's layer list, found at the first of ``LAYER_PATHS`` that holds one."""
    for path in LAYER_PATHS:
        found: object = model
        for name in path.split("."):
            found = getattr(found, name, None)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return found
    raise FreezeError(
        f"cannot find the transformer layers of {type(model).__name__} (looked for "
        f"{', '.join(LAYER_PATHS)}); train it with freeze_layers=0"
    )


def _input_embeddings(model: nn.Module) -> nn.Embedding:
    getter = getattr(model, "get_input_embeddings", None)
    matrix = getter() if callable(getter) else None
    if not isinstance(matrix, nn.Embedding):
        raise FreezeError(
            f"{type(model).__name__} has no nn.Embedding input embeddings to freeze; "
            "train it with freeze_layers=0"
        )
    return matrix


def _embedding_modules(model: nn.Module) -> list[nn.Module]:
    modules = (getattr(model, name, None) for name in EMBEDDING_PATHS)
    return [module for module in modules if isinstance(module, nn.Module)]
