"""Configuration of the Generative Recommender (GR) ranker."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_args

from models.errors import ModelError
from schemas.events import Action

ACTIONS: tuple[str, ...] = get_args(Action)
"""Action vocabulary of history steps; a candidate is an ``impression`` step."""
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet")
"""Known devices; any other (or none) maps to one "other" index."""
TASKS: tuple[str, ...] = ("click", "skip", "long_dwell", "like", "comment", "share")
"""Prediction tasks, in output column order: passive (click, skip, long dwell), then active."""
PASSIVE_TASKS = frozenset({"click", "skip", "long_dwell"})
ACTIVE_TASKS = frozenset({"like", "comment", "share"})

DEFAULT_TASK_WEIGHTS: dict[str, float] = {
    "click": 0.5,
    "skip": -1.0,
    "long_dwell": 1.0,
    "like": 1.0,
    "comment": 2.0,
    "share": 2.0,
}
"""Weights of the combined score ``sum_task weight * p(task)`` when a request gives none."""


class GRConfigError(ModelError, ValueError):
    """A GR config that cannot build a model; the message names the field."""


@dataclass(frozen=True)
class GRConfig:
    """Sizes of the GR model. ``embedding_dim`` must equal the index's post vectors.

    Each history step is the sum of a projected post embedding, an action embedding, a
    time-gap bucket embedding and a position embedding (``d_model``). After the causal
    transformer, each position's output is concatenated with its context (device, member
    profile embedding, affinity counts; late fusion) and fed to the MMoE head.
    """

    embedding_dim: int = 384
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    max_history: int = 1_000
    gap_buckets: int = 24
    actions: tuple[str, ...] = ACTIONS
    devices: tuple[str, ...] = DEVICES
    device_dim: int = 8
    context_dim: int = 32
    n_experts: int = 4
    expert_dim: int = 64
    tower_dim: int = 32
    tasks: tuple[str, ...] = TASKS
    task_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TASK_WEIGHTS))

    def __post_init__(self) -> None:
        checks = (
            (self.d_model % self.n_heads == 0, "d_model must be a multiple of n_heads"),
            (self.max_history >= 1, "max_history must be >= 1"),
            (self.gap_buckets >= 2, "gap_buckets must be >= 2"),
            (set(self.tasks) <= set(TASKS), f"tasks must be among {TASKS}"),
            (set(self.task_weights) <= set(self.tasks), "task_weights name unknown tasks"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
        )
        for ok, message in checks:
            if not ok:
                raise GRConfigError(f"invalid GRConfig: {message}")

    @property
    def affinity_dim(self) -> int:
        """Affinity counts per step: one per action, for the post's author and its format."""
        return 2 * len(self.actions)

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GRConfig:
        """Inverse of `to_dict`; unknown keys are an error (a checkpoint from a newer version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise GRConfigError(f"unknown GRConfig fields {unknown}; upgrade feedline")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)
