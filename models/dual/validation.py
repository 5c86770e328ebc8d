"""Validation during dual-encoder training: what a validation is, and the best checkpoint.

The trainer scores the model being trained before the first step (the base model), every
``validate_every`` steps and after the last step; ``BestCheckpoint`` keeps the history, a CPU
copy of the best-scoring weights and temperature, and says when ``patience`` validations in
a row brought no improvement. At the end the best state is loaded back, so the saved model is
the best validated one, possibly the base model itself.

``Validator`` is structural: any object with a ``name`` and a ``score(encoder) -> float``
(higher is better) is one, e.g. ``feedline.dual_validation.Validation``; ``models`` does not
import ``feedline``'s data-aware validations.

Example::

    best = BestCheckpoint(patience=3)
    best.record(0, validator.score(encoder), [model, temperature])
    ...
    best.restore([model, temperature])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import nn

from models.encoder import TextEncoder


class Validator(Protocol):
    """A named score of an encoder; higher is better.

    ``score`` gets the trainer's ``TextEncoder``, whose model is the one being trained (in
    eval mode, under ``torch.no_grad``), so ``encoder.encode`` uses the current weights. The
    encoder's ``model_version`` stays the base model's during training: a score must not
    cache embeddings by it.
    """

    @property
    def name(self) -> str:
        """What ``score`` measures, e.g. ``valid_ndcg_at_10(500 members)``."""
        ...

    @property
    def score(self) -> Callable[[TextEncoder], float]:
        """The score of an encoder."""
        ...


class BestCheckpoint:
    """The validation history of one run and a CPU copy of the best-scoring state."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        """Validations in a row without improvement before ``exhausted()``; 0 = never."""
        self.history: list[tuple[int, float]] = []
        """``(step, score)`` of every validation, in order; step 0 is the base model."""
        self.best_step: int | None = None
        self.best_score = math.nan
        self.stale = 0
        """Validations since the last improvement."""
        self._state: list[dict[str, torch.Tensor]] = []

    def record(self, step: int, score: float, modules: Sequence[nn.Module]) -> bool:
        """Add a validation of ``modules`` at ``step``; copy their state if it is the best so
        far (strictly higher; a non-finite score never improves on a finite one). Returns
        whether it was."""
        self.history.append((step, score))
        if not self._improves(score):
            self.stale += 1
            return False
        self.best_step, self.best_score, self.stale = step, score, 0
        self._state = [_cpu_copy(module) for module in modules]
        return True

    def exhausted(self) -> bool:
        """``patience`` validations in a row brought no improvement."""
        return self.patience > 0 and self.stale >= self.patience

    def restore(self, modules: Sequence[nn.Module]) -> None:
        """Load the best state back into ``modules`` (the ones given to ``record``)."""
        if len(self._state) != len(modules):
            raise ValueError(f"{len(modules)} modules given, {len(self._state)} recorded")
        for module, state in zip(modules, self._state, strict=True):
            module.load_state_dict(state)

    def _improves(self, score: float) -> bool:
        if self.best_step is None:
            return True
        if not math.isfinite(self.best_score):
            return math.isfinite(score)
        return score > self.best_score


def _cpu_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu", copy=True) for name, t in module.state_dict().items()}
