"""The learning-rate schedule of dual-encoder training: a linear warm-up, then a constant rate
or a linear or cosine decay to 0 at the end of the planned steps.

Steps are 0-based optimiser steps; ``lr_multiplier(step, …)`` is the factor on the base rate
that step ``step`` trains with (what ``torch.optim.lr_scheduler.LambdaLR`` expects).

Example::

    total = planned_steps(examples=1000, batch_size=32, epochs=2, max_steps=None)  # 64
    warmup = default_warmup(total)                                                  # 6
    lr_multiplier(0, "linear", warmup, total)        # 1/6: the first step, lr / 6
    lr_multiplier(5, "linear", warmup, total)        # 1.0: the last warm-up step
    lr_multiplier(63, "linear", warmup, total)       # 1/58: the last planned step
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:  # torch takes seconds to import; the CLI needs ``Schedule`` before that
    import torch

Schedule: TypeAlias = Literal["constant", "linear", "cosine"]
"""After warm-up: ``constant``, or ``linear`` / ``cosine`` decay to 0 at the planned end."""

MAX_DEFAULT_WARMUP = 50
"""The default warm-up is 10% of the planned steps, at most this many."""


def planned_steps(examples: int, batch_size: int, epochs: int, max_steps: int | None) -> int:
    """``min(max_steps, epochs * ceil(examples / batch_size))``; ``examples`` per epoch."""
    total = epochs * math.ceil(examples / batch_size)
    return total if max_steps is None else min(max_steps, total)


def default_warmup(planned: int) -> int:
    """10% of ``planned`` steps (rounded down), at most ``MAX_DEFAULT_WARMUP``."""
    return min(MAX_DEFAULT_WARMUP, planned // 10)


def lr_multiplier(step: int, schedule: Schedule, warmup: int, total: int) -> float:
    """The factor on the base rate of 0-based ``step`` of ``total`` planned steps.

    Warm-up: ``(step + 1) / warmup`` for the first ``warmup`` steps, so the last of them trains
    at the full rate. Then ``constant`` stays at 1; ``linear`` is ``(total - step) / (total -
    warmup)`` and ``cosine`` is ``(1 + cos(pi * (step - warmup) / (total - warmup))) / 2``: 1 at
    step ``warmup``, 0 at step ``total`` (one past the last planned step, so every planned
    step still learns a little). Steps past the plan (a later epoch longer than the first)
    get 0 under a decay.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = total - warmup
    progress = min(1.0, (step - warmup) / span) if span > 0 else 1.0
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Schedule, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` over ``lr_multiplier``; call its ``step()`` after every optimiser step."""
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lambda step: lr_multiplier(step, schedule, warmup, total))
