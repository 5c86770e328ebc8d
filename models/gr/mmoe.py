"""Multi-gate Mixture-of-Experts head: shared experts, one softmax gate and tower per task."""

from __future__ import annotations

import torch
from torch import nn


class MMoEHead(nn.Module):
    """Maps fused features (..., in_dim) to one logit per task (..., n_tasks).

    Experts run as one batched matmul (``n_experts`` MLPs side by side); every task mixes the
    expert outputs with its own gate, then applies its own tower. Passive tasks (click, skip,
    long dwell) and active tasks (like, comment, share) thus share experts but not gates.
    """

    def __init__(
        self, in_dim: int, n_experts: int, expert_dim: int, tower_dim: int, n_tasks: int
    ) -> None:
        super().__init__()
        self.n_experts, self.expert_dim, self.n_tasks = n_experts, expert_dim, n_tasks
        self.experts = nn.Sequential(nn.Linear(in_dim, n_experts * expert_dim), nn.GELU())
        self.gates = nn.Linear(in_dim, n_tasks * n_experts)
        self.tower_in = nn.Parameter(torch.empty(n_tasks, expert_dim, tower_dim))
        self.tower_in_bias = nn.Parameter(torch.zeros(n_tasks, tower_dim))
        self.tower_out = nn.Parameter(torch.empty(n_tasks, tower_dim))
        self.tower_out_bias = nn.Parameter(torch.zeros(n_tasks))
        nn.init.normal_(self.tower_in, std=expert_dim**-0.5)
        nn.init.normal_(self.tower_out, std=tower_dim**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_dim) -> logits (..., n_tasks)."""
        lead = x.shape[:-1]
        experts = self.experts(x).view(*lead, self.n_experts, self.expert_dim)  # (..., E, De)
        gates = self.gates(x).view(*lead, self.n_tasks, self.n_experts).softmax(-1)  # (..., T, E)
        mixed = gates @ experts  # (..., T, De)
        hidden = torch.einsum("...td,tdh->...th", mixed, self.tower_in) + self.tower_in_bias
        hidden = nn.functional.gelu(hidden)  # (..., T, Dt)
        return (hidden * self.tower_out).sum(-1) + self.tower_out_bias  # (..., T)
