"""``models.dual.trainer``: validation, early stopping, the kept best checkpoint, the time
budget and the progress bar, on a tiny decoder LLM."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models import EncoderSettings, TextEncoder
from models.dual import trainer as trainer_module
from models.dual.trainer import DualTrainResult, train_dual_encoder
from models.encoder import MODEL_CARD_FILE
from tests.support.dual_data import fast, topic_examples
from tests.tiny_models import save_tiny_model


class FakeValidation(NamedTuple):
    """Shaped like ``feedline.dual_validation.Validation``."""

    name: str
    score: Callable[[TextEncoder], float]


class Recorder:
    """A score that returns ``scores[i]`` on its ``i``-th call and records what it saw."""

    def __init__(self, scores: Sequence[float]) -> None:
        self.scores = list(scores)
        self.states: list[dict[str, torch.Tensor]] = []
        self.vectors: list[np.ndarray] = []
        self.modes: list[tuple[bool, bool]] = []

    def __call__(self, encoder: TextEncoder) -> float:
        self.modes.append((encoder.model.training, torch.is_grad_enabled()))
        self.vectors.append(encoder.encode(["member\nheadline: Jazz pianist"])[0])
        self.states.append({k: v.clone() for k, v in encoder.model.state_dict().items()})
        return self.scores[len(self.states) - 1]

    def validation(self) -> FakeValidation:
        return FakeValidation("recorded", self)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


def run(
    tiny_llama: Path,
    out: Path,
    recorder: Recorder | None = None,
    examples: int = 24,
    **overrides: object,
) -> DualTrainResult:
    settings = fast(base_model_path=tiny_llama, batch_size=4, learning_rate=1e-3, **overrides)
    validation = recorder.validation() if recorder else None
    return train_dual_encoder(topic_examples()[:examples], settings, out, validation=validation)


def saved_weights(result: DualTrainResult) -> dict[str, torch.Tensor]:
    return load_file(result.out_dir / "model.safetensors")


def same_weights(saved: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> bool:
    assert saved.keys() <= state.keys()
    return all(torch.equal(saved[name], state[name]) for name in saved)


def test_validates_before_the_first_step_every_k_steps_and_at_the_end(
    tiny_llama: Path, tmp_path: Path
) -> None:
    recorder = Recorder([0.1, 0.2, 0.3, 0.4])
    result = run(tiny_llama, tmp_path / "ft", recorder, max_steps=5, validate_every=2)
    assert result.validation == [(0, 0.1), (2, 0.2), (4, 0.3), (5, 0.4)]
    assert result.validation_name == "recorded"
    assert result.steps == 5 and result.stopped_by == "max_steps"
    assert result.best_step == result.saved_step == 5 and result.best_score == 0.4
    assert recorder.modes == [(False, False)] * 4  # eval mode, no gradients
    for before, after in itertools.pairwise(recorder.vectors):  # the current weights
        assert not np.allclose(before, after)
    assert same_weights(saved_weights(result), recorder.states[-1])
    assert result.validation_seconds > 0
    assert result.seconds_per_step * result.steps + result.validation_seconds <= result.seconds


def test_the_base_model_is_saved_when_no_step_beats_it(tiny_llama: Path, tmp_path: Path) -> None:
    recorder = Recorder([0.9, 0.5, 0.4, 0.3, 0.2])
    result = run(
        tiny_llama, tmp_path / "ft", recorder, max_steps=4, validate_every=1, patience=0,
        learn_temperature=True,
    )  # fmt: skip
    assert result.steps == 4 and result.stopped_by == "max_steps"  # patience 0: no early stop
    assert [step for step, _ in result.validation] == [0, 1, 2, 3, 4]
    assert result.best_step == result.saved_step == 0 and result.best_score == 0.9
    saved = saved_weights(result)
    assert same_weights(saved, recorder.states[0])
    assert not same_weights(saved, recorder.states[-1])
    base = TextEncoder.load(EncoderSettings(model_path=tiny_llama), backend="transformers")
    assert same_weights(saved, base.model.state_dict())  # with the percentile rows it adds
    card = json.loads((result.out_dir / MODEL_CARD_FILE).read_text())
    assert card["best_step"] == card["saved_step"] == 0
    assert card["temperature"] == pytest.approx(0.05, abs=1e-8)  # the base's, restored too
    assert card["steps"] == 4 and card["validation"] == "recorded"


def test_early_stopping_after_patience_and_the_peak_is_saved(
    tiny_llama: Path, tmp_path: Path
) -> None:
    recorder = Recorder([0.5, 0.6, 0.55, 0.58, 0.9, 0.95])
    result = run(tiny_llama, tmp_path / "ft", recorder, max_steps=10, validate_every=1, patience=2)
    assert result.stopped_by == "early_stopping"
    assert result.steps == 3 and len(result.step_losses) == 3
    assert result.validation == [(0, 0.5), (1, 0.6), (2, 0.55), (3, 0.58)]  # no extra at end
    assert result.best_step == result.saved_step == 1 and result.best_score == 0.6
    saved = saved_weights(result)
    assert same_weights(saved, recorder.states[1])
    assert not same_weights(saved, recorder.states[3])
    assert not same_weights(saved, recorder.states[0])


def test_a_tiny_budget_stops_after_the_first_step(tiny_llama: Path, tmp_path: Path) -> None:
    recorder = Recorder([0.1, 0.2])
    result = run(tiny_llama, tmp_path / "ft", recorder, max_steps=5, max_minutes=1e-9)
    assert result.steps == 1 and result.stopped_by == "max_minutes"
    assert result.validation == [(0, 0.1), (1, 0.2)]  # the end is still validated


def test_the_budget_stops_after_the_step_during_which_it_ran_out(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = itertools.count(0.0, 30.0)  # every reading of the clock is 30 s later
    monkeypatch.setattr(trainer_module, "_clock", lambda: next(ticks))
    result = run(tiny_llama, tmp_path / "ft", max_steps=5, max_minutes=1.0)
    assert result.steps == 2 and result.stopped_by == "max_minutes"  # 30 s, then 60 s
    assert result.seconds == 90.0


def test_epochs_end_the_run_when_nothing_else_does(tiny_llama: Path, tmp_path: Path) -> None:
    result = run(tiny_llama, tmp_path / "ft", examples=10, epochs=2, max_minutes=60.0)
    assert result.stopped_by == "epochs" and result.steps == result.planned_steps == 6
    assert result.warmup_steps == 0


def test_the_default_warmup_is_planned_from_the_first_epoch(
    tiny_llama: Path, tmp_path: Path
) -> None:
    settings = fast(base_model_path=tiny_llama, batch_size=1, epochs=5, max_steps=3)
    settings = settings.model_copy(update={"warmup_steps": None})
    result = train_dual_encoder(topic_examples(), settings, tmp_path / "ft")
    assert result.planned_steps == 3 and result.warmup_steps == 0
    card = json.loads((result.out_dir / MODEL_CARD_FILE).read_text())
    assert card["settings"]["warmup_steps"] is None


def test_the_progress_bar_reports_steps_loss_and_score(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder([0.25, 0.5])
    run(tiny_llama, tmp_path / "ft", recorder, max_steps=2, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "loss=" in err and "s_step=" in err and "val=0.5000" in err


def test_no_progress_bar_when_disabled(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(tiny_llama, tmp_path / "ft", max_steps=1)
    assert "dual-encoder" not in capsys.readouterr().err
