"""Pre-norm causal transformer blocks whose attention takes the shared-context layout."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from models.gr.attention import attend
from models.gr.config import GRConfig


class SelfAttention(nn.Module):
    """Multi-head self-attention; ``history_len`` splits history from candidates."""

    def __init__(self, config: GRConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(
        self, x: torch.Tensor, history_len: int, impl: Literal["sdpa", "flex"]
    ) -> torch.Tensor:
        """x: (B, L, D) -> (B, L, D)."""
        b, length, d = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, L, Dh)
        dropout_p = self.dropout if self.training else 0.0
        y = attend(q, k, v, history_len, impl, dropout_p)  # (B, H, L, Dh)
        return self.out(y.transpose(1, 2).reshape(b, length, d))


class Block(nn.Module):
    """LayerNorm → attention → residual; LayerNorm → GELU MLP → residual."""

    def __init__(self, config: GRConfig) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config)
        self.norm_mlp = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, config.ff_mult * config.d_model),
            nn.GELU(),
            nn.Linear(config.ff_mult * config.d_model, config.d_model),
            nn.Dropout(config.dropout),
        )

    def forward(
        self, x: torch.Tensor, history_len: int, impl: Literal["sdpa", "flex"]
    ) -> torch.Tensor:
        """x: (B, L, D) -> (B, L, D)."""
        x = x + self.attn(self.norm_attn(x), history_len, impl)
        return x + self.mlp(self.norm_mlp(x))
