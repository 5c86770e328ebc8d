"""The graph that ``models.onnx_export`` exports: the native ``BertEncoder`` with pooling and
L2 normalisation, its attention as one ONNX Runtime ``com.microsoft.MultiHeadAttention`` node
per layer.

The exporter's own SDPA decomposition (the boolean mask through ``Where``, a NaN guard, ~30
reshapes and transposes) is fused by neither the session nor ``onnxruntime.transformers``'
optimizer; in ONNX Runtime's profile its Where/IsNaN/Softmax/Transpose nodes took about a third
of an fp32 pass, and the fused graph ran passes 10-25% faster (2 shared cores, noisy). So
attention goes through a custom torch op, ``feedline::bert_attention``: in eager mode the same
SDPA call as ``models.bert``, in the exported graph ``_attention_onnx``.
"""

from __future__ import annotations

from typing import Any

import onnxscript
import torch
from onnxscript import FLOAT, INT64
from onnxscript import opset18 as op
from torch import nn

from models.bert import BertEncoder
from models.pooling import pool
from models.settings import Pooling

_MSFT = onnxscript.values.Opset("com.microsoft", 1)


@torch.library.custom_op("feedline::bert_attention", mutates_args=())
def bert_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, heads: int
) -> torch.Tensor:
    """Multi-head attention of projected ``q``, ``k``, ``v`` (B, T, D) over the keys where
    ``mask`` (B, T) is 1; returns (B, T, D). BERT's ``_SelfAttention`` after its projections."""
    qh, kh, vh = (t.unflatten(-1, (heads, t.shape[-1] // heads)).transpose(1, 2) for t in (q, k, v))
    keys = mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    out = nn.functional.scaled_dot_product_attention(qh, kh, vh, attn_mask=keys)  # (B, H, T, d)
    return out.transpose(1, 2).flatten(2)


@bert_attention.register_fake
def _(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, heads: int
) -> torch.Tensor:
    return torch.empty_like(q)


@onnxscript.script(_MSFT)
def _attention_onnx(q: FLOAT, k: FLOAT, v: FLOAT, mask: INT64, heads: int) -> FLOAT:
    """``bert_attention`` as ONNX Runtime's fused kernel (key_padding_mask: int32 (B, T))."""
    return _MSFT.MultiHeadAttention(q, k, v, None, op.Cast(mask, to=6), num_heads=heads)


class PooledEncoder(nn.Module):
    """``BertEncoder`` + pooling + L2 normalisation: the graph that is exported.

    Unlike ``BertEncoder.forward`` it always applies the padding mask (an all-ones mask gives
    the same result), so the graph has no data-dependent branch, and attention goes through
    ``bert_attention`` (eager: the same SDPA call; exported: one fused node).
    """

    def __init__(self, model: BertEncoder, pooling: Pooling) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        """Unit embeddings (B, D) of ``input_ids`` (B, T)."""
        x = self.model.embeddings(input_ids, token_type_ids)  # (B, T, D)
        for layer in self.model.encoder.layer:
            x = _layer_forward(layer, x, attention_mask)  # (B, T, D)
        pooled = pool(x, attention_mask, "last_token" if self.pooling == "last_token" else "mean")
        return nn.functional.normalize(pooled, dim=-1)  # (B, D)


def _layer_forward(layer: Any, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``models.bert._Layer.forward`` with attention through ``bert_attention``."""
    projections = layer.attention.self
    q, k, v = (p(x) for p in (projections.query, projections.key, projections.value))
    context = bert_attention(q, k, v, attention_mask, projections.heads)  # (B, T, D)
    attended = layer.attention.output(context, x)
    return layer.output(layer.intermediate(attended), attended)


def attention_translation() -> dict[Any, Any]:
    """``torch.onnx.export``'s ``custom_translation_table``: ``bert_attention`` → the fused node."""
    return {bert_attention._opoverload: _attention_onnx}
