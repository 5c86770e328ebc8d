"""Attention for shared-context multi-item scoring.

A sequence holds ``T`` history steps followed by ``K`` candidates (``L = T + K``). History is
causal; each candidate sees the whole history and itself, never another candidate:

    allowed(q, kv) = kv <= q  and  (kv < T  or  kv == q)

so one forward pass scores all ``K`` candidates exactly as ``K`` separate passes over
``[history, candidate]`` would. Training uses ``K = 0`` (plain causal attention).

Two implementations compute the same thing:

- ``sdpa``: PyTorch ``scaled_dot_product_attention`` with a dense boolean ``(L, L)`` mask
  (with ``K = 0`` the causal flag, which lets it use fused kernels). Used on CPU.
- ``flex``: FlexAttention with a block mask, so fully masked 128x128 tiles (candidate x
  candidate) are skipped. Compiled on CUDA; on CPU it runs unfused (tests only). Sequences
  are padded to a multiple of the block size and ``T`` enters the mask as a tensor, so the
  compiled kernel is reused across requests instead of recompiled for every (T, K): padded
  keys fail ``kv <= q`` for every real query, and padded query rows are cut off.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Literal

import torch
import torch.nn.functional as F

AttentionImpl = Literal["auto", "sdpa", "flex"]
FLEX_BLOCK = 128
"""FlexAttention's default tile; flex sequences are padded to a multiple of it."""


def shared_context_mask(
    history_len: int, n_candidates: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Boolean ``(L, L)`` mask, True where query row ``q`` may attend to key ``kv``."""
    length = history_len + n_candidates
    pos = torch.arange(length, device=device)
    q, kv = pos[:, None], pos[None, :]
    return (kv <= q) & ((kv < history_len) | (kv == q))


def resolve_impl(impl: AttentionImpl, device: torch.device) -> Literal["sdpa", "flex"]:
    """``auto`` is ``flex`` on CUDA and ``sdpa`` elsewhere."""
    if impl == "auto":
        return "flex" if device.type == "cuda" else "sdpa"
    return impl


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    history_len: int,
    impl: Literal["sdpa", "flex"] = "sdpa",
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Masked attention. ``q, k, v``: (B, H, L, Dh); the last ``L - history_len`` positions
    are candidates. Returns (B, H, L, Dh)."""
    length = q.shape[-2]
    if impl == "flex":
        padded = -(-length // FLEX_BLOCK) * FLEX_BLOCK
        q, k, v = (F.pad(x, (0, 0, 0, padded - length)) for x in (q, k, v))
        block_mask = _block_mask(history_len, padded, q.device)
        return _flex(q.device.type)(q, k, v, block_mask=block_mask)[..., :length, :]
    if history_len == length:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
    mask = shared_context_mask(history_len, length - history_len, q.device)  # (L, L)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


@functools.lru_cache(maxsize=64)
def _block_mask(history_len: int, length: int, device: torch.device) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    t = torch.tensor(history_len, device=device)  # a tensor, not a constant: no recompiles

    def mask_mod(b: Any, h: Any, q: Any, kv: Any) -> Any:
        return (kv <= q) & ((kv < t) | (kv == q))

    return create_block_mask(mask_mod, None, None, length, length, device=device)


@functools.lru_cache(maxsize=2)
def _flex(device_type: str) -> Any:
    from torch.nn.attention.flex_attention import flex_attention

    if device_type == "cuda":
        return torch.compile(flex_attention, dynamic=False)

    def unfused(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            # CPU flex runs unfused; it exists to check the GPU path's mask on CPU machines
            warnings.filterwarnings("ignore", message="flex_attention called without")
            return flex_attention(*args, **kwargs)

    return unfused
