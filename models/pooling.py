"""Pooling token states into one vector per sequence, shared by every encoder runtime."""

from __future__ import annotations

import torch

from models.settings import Pooling


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
