"""``models.dual.schedule``: planned steps, the default warm-up and the rate multipliers."""

from __future__ import annotations

import math

import pytest
import torch

from models.dual.schedule import default_warmup, lr_multiplier, lr_scheduler, planned_steps
from models.dual.train_settings import DualTrainSettings


@pytest.mark.parametrize(
    "examples,batch_size,epochs,max_steps,planned",
    [
        (100, 32, 2, None, 8),  # ceil(100 / 32) = 4 per epoch
        (96, 32, 2, None, 6),
        (100, 32, 2, 5, 5),
        (100, 32, 2, 100, 8),
        (3, 32, 1, None, 1),
    ],
)
def test_planned_steps(
    examples: int, batch_size: int, epochs: int, max_steps: int | None, planned: int
) -> None:
    assert planned_steps(examples, batch_size, epochs, max_steps) == planned


@pytest.mark.parametrize("planned,warmup", [(0, 0), (9, 0), (12, 1), (120, 12), (499, 49),
                                            (500, 50), (10_000, 50)])  # fmt: skip
def test_default_warmup_is_a_tenth_capped_at_50(planned: int, warmup: int) -> None:
    assert default_warmup(planned) == warmup
    assert DualTrainSettings().warmup(planned) == warmup


def test_an_explicit_warmup_is_used_as_is() -> None:
    assert DualTrainSettings(warmup_steps=7).warmup(3) == 7
    assert DualTrainSettings(warmup_steps=0).warmup(1000) == 0
    assert DualTrainSettings(warmup_steps=200).warmup(1000) == 200


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_warmup_rises_linearly_to_the_full_rate(schedule: str) -> None:
    values = [lr_multiplier(step, schedule, 4, 20) for step in range(4)]  # type: ignore[arg-type]
    assert values == [0.25, 0.5, 0.75, 1.0]
    assert lr_multiplier(4, schedule, 4, 20) == 1.0  # type: ignore[arg-type]


def test_constant_stays_at_the_full_rate() -> None:
    assert [lr_multiplier(step, "constant", 4, 20) for step in (10, 19, 25)] == [1.0, 1.0, 1.0]


def test_linear_decays_to_zero_after_the_last_planned_step() -> None:
    at = [lr_multiplier(step, "linear", 4, 20) for step in (4, 12, 19, 20, 25)]
    assert at == pytest.approx([1.0, 0.5, 1 / 16, 0.0, 0.0])


def test_cosine_decays_to_zero_after_the_last_planned_step() -> None:
    at = [lr_multiplier(step, "cosine", 4, 20) for step in (4, 8, 12, 19, 20, 25)]
    expected = [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5]
    expected += [0.5 * (1 + math.cos(math.pi * 15 / 16)), 0.0, 0.0]
    assert at == pytest.approx(expected)
    assert at[3] < 1 / 16  # cosine spends less of the end at a high rate than linear


def test_without_warmup_the_first_step_trains_at_the_full_rate() -> None:
    assert lr_multiplier(0, "linear", 0, 10) == 1.0
    assert lr_multiplier(9, "linear", 0, 10) == pytest.approx(0.1)
    assert lr_multiplier(0, "cosine", 0, 10) == 1.0


def test_a_warmup_longer_than_the_plan_never_decays() -> None:
    assert lr_multiplier(2, "linear", 10, 3) == pytest.approx(0.3)
    assert lr_multiplier(10, "linear", 10, 3) == 0.0  # past the plan


def test_the_scheduler_sets_the_optimiser_rate_step_by_step() -> None:
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scheduler = lr_scheduler(optimizer, "linear", 2, 6)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.05, 0.1, 0.1, 0.075, 0.05, 0.025])
