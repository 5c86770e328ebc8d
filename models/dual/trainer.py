"""Fine-tune one shared encoder as a dual encoder with InfoNCE (LinkedIn's 2026 recipe).

Member prompts and post prompts go through the same weights. Each step embeds ``B`` member
prompts and ``B + M`` post prompts (the ``B`` engaged posts, then the sampled hard and easy
negatives); every post that is not a row's own positive is a negative for that row. With
``catalogue_negatives`` every post of the catalogue is one too, from a bank re-embedded every
few steps (``models.dual.catalogue_negatives``), so the loss ranks over what full ranking
ranks over. The
percentile special tokens are rows of the input embedding matrix, so they are trained too,
also when ``freeze_layers`` freezes the embeddings and the bottom layers
(``models.dual.freezing``). AdamW, a linear warm-up then a constant rate or a linear or cosine
decay to 0 over the planned steps (``models.dual.schedule``), gradient clipping, bf16 autocast
on CUDA.

A run stops at the first of: the last epoch, ``max_steps``, ``max_minutes`` (after the step
during which the budget ran out) and, given a ``validation``, ``patience`` validations in a
row without improvement. A validation scores the model before the first step (the base
model), every ``validate_every`` steps and after the last step; the best-scoring weights are
the ones saved (``models.dual.validation``), the base model's own if no step beat them. A tqdm
bar on stderr shows the ETA, loss, seconds per step and the last score.

Example::

    result = train_dual_encoder(
        examples, DualTrainSettings(epochs=2, max_minutes=30), Path("models/ft"), validation
    )
    print(result.stopped_by, result.best_step, result.seconds_per_step)
    encoder = TextEncoder.load(EncoderSettings(model_path=result.out_dir))
    assert encoder.model_version == result.model_version
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np
import torch

from models.dual.examples import ContrastiveExample, ExampleSource, epoch_examples
from models.dual.progress import TrainingProgress
from models.dual.saving import save_dual_encoder
from models.dual.schedule import planned_steps
from models.dual.step_trainer import StepTrainer, encoder_settings
from models.dual.train_settings import DualTrainSettings
from models.dual.validation import BestCheckpoint, Validator
from models.encoder import TextEncoder

__all__ = ["DualTrainResult", "StopReason", "save_dual_encoder", "train_dual_encoder"]

log = logging.getLogger(__name__)

StopReason: TypeAlias = Literal["epochs", "max_steps", "max_minutes", "early_stopping"]
"""Why a run ended: all epochs ran, ``max_steps``, ``max_minutes``, or ``patience``."""

_clock: Callable[[], float] = time.perf_counter
"""The trainer's wall clock (a module global, so that tests can stand in a fake one)."""


class DualTrainResult(NamedTuple):
    """What a training run produced, how fast it went, why it stopped and how it validated."""

    model_version: str
    """``<base name>-ft-<first 12 hex of the weights' sha256>``; what the encoder reports."""
    out_dir: Path
    """The saved model directory (loadable with ``TextEncoder.load``)."""
    step_losses: list[float]
    """InfoNCE loss of every optimiser step, in order."""
    epoch_losses: list[float]
    """Mean loss per epoch, weighted by the queries of each step."""
    seconds: float
    """Wall time of the training loop, validation included (not loading or saving)."""
    steps: int
    """Optimiser steps taken."""
    examples_per_s: float
    """Queries (positive pairs) trained per second of optimiser steps (validation excluded)."""
    seconds_per_step: float
    """Mean wall time of one optimiser step (forward, backward, update), validation excluded."""
    validation_seconds: float
    """Wall time spent validating and copying the best state."""
    stopped_by: StopReason
    """Why the run ended."""
    planned_steps: int
    """``min(max_steps, epochs * ceil(first epoch's examples / batch_size))``."""
    warmup_steps: int
    """The warm-up used (``warmup_steps``, or its default for ``planned_steps``)."""
    validation: list[tuple[int, float]]
    """``(step, score)`` of every validation; step 0 is the base model. Empty without one."""
    validation_name: str | None
    """What the score measures; None without a validation."""
    best_step: int | None
    """The best-scoring validated step, whose weights were saved; 0 means no step beat the
    base model and the saved weights are the base model's. None without a validation."""
    best_score: float | None
    """The score at ``best_step``."""
    saved_step: int
    """The step whose weights were saved: ``best_step`` with a validation, else ``steps``."""


def train_dual_encoder(
    examples: ExampleSource,
    settings: DualTrainSettings,
    out_dir: Path,
    on_step: Callable[[int, float], None] | None = None,
    validation: Validator | None = None,
    catalogue: Sequence[str] | None = None,
) -> DualTrainResult:
    """Fine-tune ``settings.base_path()`` on ``examples`` and save it to ``out_dir``.

    ``examples`` is a fixed sequence or a sampler ``(epoch, rng) -> examples`` called at the
    start of each epoch (the first epoch's length plans the schedule). ``on_step(step, loss)``
    is called after every optimiser step (``step`` counts from 1). ``validation`` (e.g.
    ``feedline.dual_validation.validation_for(...)``) enables early stopping and keeping the
    best checkpoint; without it the last step's weights are saved. ``catalogue``: every post
    prompt, which ``settings.catalogue_negatives`` scores each query against.
    """
    log.info("dual-encoder training with %s", settings.model_dump_json())
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    first = epoch_examples(examples, 0, rng)
    plan = planned_steps(len(first), settings.batch_size, settings.epochs, settings.max_steps)
    encoder = TextEncoder.load(encoder_settings(settings), backend="transformers")
    trainer = StepTrainer(encoder, settings, plan, catalogue)
    with TrainingProgress(plan, settings.progress) as progress:
        run = _Run(trainer, validation, on_step, progress)
        run.train(first, examples, rng)
    version = trainer.save(Path(out_dir), run.card())
    log.info("saved %s to %s after %d steps (%s)", version, out_dir, trainer.steps, run.stopped_by)
    return run.result(version, Path(out_dir))


class _Run:
    """Epochs, stopping, validation and timing around one ``StepTrainer``."""

    def __init__(
        self,
        trainer: StepTrainer,
        validation: Validator | None,
        on_step: Callable[[int, float], None] | None,
        progress: TrainingProgress,
    ) -> None:
        self.trainer = trainer
        self.settings = trainer.settings
        self.validation = validation
        self.on_step = on_step
        self.progress = progress
        self.best = BestCheckpoint(self.settings.patience)
        self.stopped_by: StopReason = "epochs"
        self.seconds = 0.0
        self.validation_seconds = 0.0
        self._deadline = math.inf

    def train(
        self,
        first: Sequence[ContrastiveExample],
        examples: ExampleSource,
        rng: np.random.Generator,
    ) -> None:
        """Validate the base model, train until a stop, validate the last step, keep the best."""
        started = _clock()
        if self.settings.max_minutes is not None:
            self._deadline = started + 60.0 * self.settings.max_minutes
        self._validate()
        for epoch in range(self.settings.epochs):
            rows = first if epoch == 0 else epoch_examples(examples, epoch, rng)
            if self.trainer.epoch(rows, rng, self._after_step):
                break
        if self.validation is not None:
            if self.best.history[-1][0] != self.trainer.steps:
                self._validate()
            self.best.restore(self.trainer.state_modules())
            self._warn_if_base_is_best()
        self.seconds = _clock() - started

    def _after_step(self, loss: float) -> bool:
        """Report the step; validate when due; return whether the run stops here."""
        step = self.trainer.steps
        if self.on_step is not None:
            self.on_step(step, loss)
        self.progress.step(loss, self.trainer.seconds_per_step())
        if self.validation is not None and step % self.settings.validate_every == 0:
            self._validate()
            if self.best.exhausted():
                return self._stop("early_stopping")
        if self.trainer.done():
            return self._stop("max_steps")
        if _clock() >= self._deadline:
            return self._stop("max_minutes")
        return False

    def _stop(self, reason: StopReason) -> bool:
        self.stopped_by = reason
        return True

    def _validate(self) -> None:
        if self.validation is None:
            return
        started = _clock()
        score = self.trainer.score(self.validation.score)
        best = self.best.record(self.trainer.steps, score, self.trainer.state_modules())
        self.validation_seconds += _clock() - started
        self.progress.validated(score)
        log.info(
            "step %d: %s = %.4f%s",
            self.trainer.steps,
            self.validation.name,
            score,
            " (best so far)" if best else "",
        )

    def _warn_if_base_is_best(self) -> None:
        if self.best.best_step == 0 and self.trainer.steps > 0:
            log.warning(
                "no validated step beat the base model (%s %.4f at step 0); saving the base "
                "model's weights",
                self.validation.name if self.validation else "score",
                self.best.best_score,
            )

    def saved_step(self) -> int:
        """The step whose weights the model holds now (after ``train``)."""
        if self.best.best_step is None:
            return self.trainer.steps
        return self.best.best_step

    def card(self) -> dict[str, Any]:
        """What the model card records of this run beyond the trainer's own fields."""
        return {
            "stopped_by": self.stopped_by,
            "saved_step": self.saved_step(),
            "validation": self.validation.name if self.validation else None,
            "validation_history": [[step, _finite(score)] for step, score in self.best.history],
            "best_step": self.best.best_step,
            "best_score": _finite(self.best.best_score),
        }

    def result(self, version: str, out_dir: Path) -> DualTrainResult:
        """The run's result once saved as ``version`` in ``out_dir``."""
        trainer = self.trainer
        train_s = trainer.step_seconds
        return DualTrainResult(
            model_version=version,
            out_dir=out_dir,
            step_losses=trainer.step_losses,
            epoch_losses=trainer.epoch_losses,
            seconds=self.seconds,
            steps=trainer.steps,
            examples_per_s=trainer.queries / train_s if train_s > 0 else 0.0,
            seconds_per_step=trainer.seconds_per_step(),
            validation_seconds=self.validation_seconds,
            stopped_by=self.stopped_by,
            planned_steps=trainer.planned_steps,
            warmup_steps=trainer.warmup_steps,
            validation=list(self.best.history),
            validation_name=self.validation.name if self.validation else None,
            best_step=self.best.best_step,
            best_score=self.best.best_score if self.best.history else None,
            saved_step=self.saved_step(),
        )


def _finite(value: float) -> float | None:
    """``value``, or None where JSON has no number for it (NaN, infinities)."""
    return value if math.isfinite(value) else None
