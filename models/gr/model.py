"""The Generative Recommender: a causal transformer over a member's history, late fusion
with per-step context, and a multi-task MMoE head.

Shapes: ``B`` sequences, ``T`` history steps, ``K`` candidates, ``L = T + K``, ``E`` post
embedding width, ``D`` model width, ``A`` affinity features, ``N`` tasks.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from models.gr.attention import AttentionImpl, resolve_impl
from models.gr.config import GRConfig
from models.gr.mmoe import MMoEHead
from models.gr.transformer import Block


class GRInputs(NamedTuple):
    """One batch: ``history_len`` history steps, then candidates, per row."""

    post_emb: torch.Tensor
    """(B, L, E) float: the post of each step (zeros for a post the index no longer holds)."""
    action: torch.Tensor
    """(B, L) long: index into ``GRConfig.actions``; candidates are impressions."""
    gap: torch.Tensor
    """(B, L) long: time-gap bucket since the previous step (candidates: since the last)."""
    device: torch.Tensor
    """(B, L) long: device index, 0 = other/unknown (late-fusion context)."""
    affinity: torch.Tensor
    """(B, L, A) float: log1p counts of the member's earlier actions on the post's author and
    format (late-fusion context)."""
    profile: torch.Tensor
    """(B, E) float: the member's profile embedding, zeros if unknown (late-fusion context)."""
    history_len: int
    """T: positions from ``history_len`` on are candidates (all of them when training: 0 K)."""

    def batch_slice(self, lo: int, hi: int) -> GRInputs:
        """Rows ``lo:hi`` of the batch."""
        return GRInputs(
            self.post_emb[lo:hi],
            self.action[lo:hi],
            self.gap[lo:hi],
            self.device[lo:hi],
            self.affinity[lo:hi],
            self.profile[lo:hi],
            self.history_len,
        )

    def first_candidates(self, n: int) -> GRInputs:
        """The history and only the first ``n`` candidates."""
        end = self.history_len + n
        return GRInputs(
            self.post_emb[:, :end],
            self.action[:, :end],
            self.gap[:, :end],
            self.device[:, :end],
            self.affinity[:, :end],
            self.profile,
            self.history_len,
        )

    def to(self, device: torch.device | str) -> GRInputs:
        """The same batch on ``device``."""
        return GRInputs(
            self.post_emb.to(device),
            self.action.to(device),
            self.gap.to(device),
            self.device.to(device),
            self.affinity.to(device),
            self.profile.to(device),
            self.history_len,
        )


class GenerativeRecommender(nn.Module):
    """Scores every position of ``GRInputs``: logits (B, L, N).

    Training reads the logits at history impressions (causal: each sees only earlier steps);
    serving reads them at the candidates (`score_candidates`).

    Example:
        >>> model = GenerativeRecommender(GRConfig(embedding_dim=8, d_model=16, n_heads=2))
        >>> sum(p.numel() for p in model.parameters()) > 0
        True
    """

    def __init__(self, config: GRConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.post_proj = nn.Linear(config.embedding_dim, d)
        self.action_emb = nn.Embedding(len(config.actions), d)
        self.gap_emb = nn.Embedding(config.gap_buckets, d)
        self.pos_emb = nn.Embedding(config.max_history + 1, d)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(d)
        self.device_emb = nn.Embedding(len(config.devices) + 1, config.device_dim)
        self.profile_proj = nn.Linear(config.embedding_dim, config.context_dim)
        self.affinity_proj = nn.Linear(config.affinity_dim, config.context_dim)
        self.cross_proj = nn.Linear(config.embedding_dim, d)
        fused = 2 * d + config.device_dim + 2 * config.context_dim + 1
        self.head = MMoEHead(
            fused, config.n_experts, config.expert_dim, config.tower_dim, len(config.tasks)
        )
        self.apply(_init_weights)

    def forward(self, inputs: GRInputs, impl: AttentionImpl = "auto") -> torch.Tensor:
        """Logits (B, L, N) for every position."""
        t = inputs.history_len
        length = inputs.action.shape[1]
        if t > self.config.max_history:
            raise ValueError(f"history of {t} steps exceeds max_history {self.config.max_history}")
        pos = torch.arange(length, device=inputs.action.device).clamp(max=t)  # candidates at T
        x = (
            self.post_proj(inputs.post_emb)
            + self.action_emb(inputs.action)
            + self.gap_emb(inputs.gap)
            + self.pos_emb(pos)[None]
        )  # (B, L, D)
        x = self.drop(x)
        kind = resolve_impl(impl, x.device)
        for block in self.blocks:
            x = block(x, t, kind)
        return self.head(self._fuse(self.norm(x), inputs))  # (B, L, N)

    def _fuse(self, h: torch.Tensor, inputs: GRInputs) -> torch.Tensor:
        """Late fusion: context joins the transformer output, outside self-attention.

        Two explicit interactions, which an MLP over a concatenation learns poorly: ``h *
        cross_proj(post)`` (the history summary against the step's own post, a learned dot
        product) and cosine(profile, post), the retrieval score."""
        profile = self.profile_proj(inputs.profile)[:, None].expand(-1, h.shape[1], -1)
        cosine = (inputs.post_emb * inputs.profile[:, None]).sum(-1, keepdim=True)  # (B, L, 1)
        context = (
            h * self.cross_proj(inputs.post_emb),
            self.device_emb(inputs.device),
            profile,
            self.affinity_proj(inputs.affinity),
            cosine,
        )
        return torch.cat((h, *context), dim=-1)  # (B, L, 2 D + Dd + 2 Dc + 1)

    def score_candidates(self, inputs: GRInputs, impl: AttentionImpl = "auto") -> torch.Tensor:
        """Task probabilities of the candidates: (B, K, N)."""
        return torch.sigmoid(self.forward(inputs, impl)[:, inputs.history_len :])


def _init_weights(module: nn.Module) -> None:
    """GPT-2 style: small normal weights, so that the unit-norm post embedding is not drowned
    by action, gap and position embeddings at the start of training."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
