"""One dual-encoder training run's model, tokenizer, temperature, optimiser and schedule, and
its InfoNCE step; ``models.dual.trainer`` drives it (epochs, stopping, validation).

Example::

    trainer = StepTrainer(TextEncoder.load(settings, backend="transformers"), settings, 120)
    loss = trainer.step(examples[:32], rng)
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.dual.catalogue_negatives import CatalogueNegatives
from models.dual.examples import ContrastiveExample, build_batch
from models.dual.freezing import freeze_bottom
from models.dual.loss import Temperature, info_nce
from models.dual.saving import save_dual_encoder
from models.dual.schedule import lr_scheduler
from models.dual.train_settings import DualTrainSettings
from models.encoder import TextEncoder, pool
from models.settings import EncoderSettings
from processors.percentiles import wrapper_tokens

log = logging.getLogger(__name__)


class StepTrainer:
    """The model, tokenizer, temperature, optimiser and schedule of one run."""

    def __init__(
        self,
        encoder: TextEncoder,
        settings: DualTrainSettings,
        planned: int,
        catalogue: Sequence[str] | None = None,
    ) -> None:
        """``catalogue``: the post prompts that ``settings.catalogue_negatives`` scores every
        query against (required then, ignored otherwise)."""
        self.settings = settings
        self.catalogue: CatalogueNegatives | None = None
        if settings.catalogue_negatives:
            if catalogue is None:
                raise TypeError("catalogue_negatives needs the catalogue's post prompts")
            self.catalogue = CatalogueNegatives(catalogue, settings.catalogue_refresh_every)
        self.encoder = encoder
        model, tokenizer = encoder.model, encoder.tokenizer
        if not isinstance(model, PreTrainedModel) or not isinstance(
            tokenizer, PreTrainedTokenizerBase
        ):
            raise TypeError("training needs TextEncoder.load(..., backend='transformers')")
        self.model: PreTrainedModel = model
        self.tokenizer: PreTrainedTokenizerBase = tokenizer
        self.device = encoder.device
        self.autocast = settings.bf16 and self.device.type == "cuda"
        self.temperature = Temperature(settings.temperature, settings.learn_temperature)
        self.temperature.to(self.device)
        self.use_cache = getattr(self.model.config, "use_cache", None)
        _prepare_for_training(self.model, settings.use_gradient_checkpointing())
        frozen = freeze_bottom(self.model, settings.freeze_layers, _token_rows(self.tokenizer))
        if settings.freeze_layers:
            log.info("froze the embeddings and %d layers", settings.freeze_layers)
        self.optimizer = _optimizer(self.model, self.temperature, settings, frozen.partial)
        self.planned_steps = planned
        self.warmup_steps = settings.warmup(planned)
        self.schedule = lr_scheduler(self.optimizer, settings.schedule, self.warmup_steps, planned)
        self.step_losses: list[float] = []
        self.epoch_losses: list[float] = []
        self.queries = 0
        self.step_seconds = 0.0
        """Wall time of all optimiser steps (validation excluded)."""

    @property
    def steps(self) -> int:
        """Optimiser steps taken so far."""
        return len(self.step_losses)

    def seconds_per_step(self) -> float:
        """Mean wall time of the steps so far (0 before the first)."""
        return self.step_seconds / self.steps if self.steps else 0.0

    def done(self) -> bool:
        """``max_steps`` reached."""
        cap = self.settings.max_steps
        return cap is not None and self.steps >= cap

    def epoch(
        self,
        examples: Sequence[ContrastiveExample],
        rng: np.random.Generator,
        after_step: Callable[[float], bool],
    ) -> bool:
        """Train one epoch in batches; ``after_step(loss)`` returns True to stop the run.
        Returns whether it did."""
        size = self.settings.batch_size
        order = rng.permutation(len(examples))
        total, count, stop = 0.0, 0, False
        for start in range(0, len(order), size):
            chunk = [examples[int(i)] for i in order[start : start + size]]
            loss = self.step(chunk, rng)
            total, count = total + loss * len(chunk), count + len(chunk)
            if after_step(loss):
                stop = True
                break
        if count:
            self.epoch_losses.append(total / count)
        return stop

    def step(self, chunk: list[ContrastiveExample], rng: np.random.Generator) -> float:
        self._refresh_catalogue()
        started = time.perf_counter()
        batch = build_batch(chunk, self.settings.hard_negatives, self.settings.easy_negatives, rng)
        queries = self.embed(batch.queries)  # (B, D)
        if self.settings.latest_weight > 0:
            queries = self._with_latest(queries, batch.latest)
        docs = self.embed(batch.docs)  # (B + M, D)
        exclude_rows = batch.exclude  # (B, B + M)
        if self.catalogue is not None:  # then (B + M + N, D) and (B, B + M + N)
            docs, exclude_rows = self.catalogue.extend(
                docs, batch.docs, exclude_rows, batch.engaged
            )
        exclude = torch.from_numpy(exclude_rows).to(self.device)
        loss = info_nce(queries, docs, self.temperature(), exclude)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        value = float(loss.detach())
        self.step_losses.append(value)
        self.queries += len(chunk)
        self.step_seconds += time.perf_counter() - started
        return value

    def _with_latest(self, queries: torch.Tensor, latest: list[str | None]) -> torch.Tensor:
        """The +latest queries: each prompt's unit vector plus ``latest_weight`` times the
        unit vector of the row's previous positive, embedded live with gradients (a bank
        vector, stale between refreshes, let the live docs chase it and collapse)."""
        rows, texts = [], []
        for i, text in enumerate(latest):
            if text is not None:
                rows.append(i)
                texts.append(text)
        if not rows:
            return queries
        vectors = F.normalize(self.embed(texts), dim=-1)  # (R, D)
        added = torch.zeros_like(queries)
        added[rows] = vectors.to(queries.dtype)
        return F.normalize(queries, dim=-1) + self.settings.latest_weight * added

    def _refresh_catalogue(self) -> None:
        """Re-embed the catalogue negatives when due; its time counts as step time (it is
        part of what training costs), and it runs in eval mode like a validation."""
        if self.catalogue is None:
            return
        started = time.perf_counter()
        with self._evaluating():
            refreshed = self.catalogue.refresh_if_due(self.steps, self.encoder.encode, self.device)
        if refreshed:
            log.info(
                "re-embedded %d catalogue negatives before step %d", len(self.catalogue), self.steps
            )
        self.step_seconds += time.perf_counter() - started

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Pooled, not yet normalised embeddings ``(N, D)`` with gradients."""
        inputs = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.settings.max_length,
            return_tensors="pt",
        ).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            hidden = self.model(**inputs).last_hidden_state  # (N, T, D)
        return pool(hidden.float(), inputs["attention_mask"], self.encoder.pooling)  # (N, D)

    def score(self, score: Callable[[TextEncoder], float]) -> float:
        """``score(encoder)`` of the current weights, in eval mode without gradients.

        ``self.encoder.model`` is ``self.model``, so ``encoder.encode`` sees every update.
        """
        with self._evaluating():
            return float(score(self.encoder))

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Eval mode without gradients, back to training mode after."""
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train()

    def state_modules(self) -> list[nn.Module]:
        """What a checkpoint holds: the model and the temperature."""
        return [self.model, self.temperature]

    def save(self, out_dir: Path, card: dict[str, Any]) -> str:
        self.model.eval()
        if self.model.is_gradient_checkpointing:
            self.model.gradient_checkpointing_disable()
        if self.use_cache is not None:
            self.model.config.use_cache = self.use_cache
        return save_dual_encoder(
            self.model,
            self.tokenizer,
            out_dir,
            base_path=self.settings.base_path(),
            card={
                "base_model_version": self.encoder.model_version,
                "pooling": self.encoder.pooling,
                "temperature": self.temperature.value(),
                "steps": self.steps,
                "settings": self.settings.model_dump(mode="json"),
                **card,
            },
        )


def _token_rows(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Input embedding rows of the percentile wrappers the tokenizer knows (added at load or
    saved by an earlier fine-tune)."""
    vocabulary = tokenizer.get_vocab()
    return [vocabulary[token] for token in wrapper_tokens() if token in vocabulary]


def encoder_settings(settings: DualTrainSettings) -> EncoderSettings:
    """What loading the base model for training needs of ``settings``."""
    return EncoderSettings(
        model_path=settings.base_path(),
        pooling=settings.pooling,
        max_length=settings.max_length,
        percentile_tokens=settings.percentile_tokens,
        device=settings.device,
    )


def _prepare_for_training(model: PreTrainedModel, checkpointing: bool) -> None:
    model.train()
    if getattr(model.config, "use_cache", None):
        model.config.use_cache = False  # a KV cache is useless in training and clashes with
        # gradient checkpointing
    if not checkpointing:
        return
    if model.supports_gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        log.info("%s does not support gradient checkpointing", type(model).__name__)


def _optimizer(
    model: PreTrainedModel,
    temperature: Temperature,
    settings: DualTrainSettings,
    partial: torch.Tensor | None,
) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and norms, nor on the temperature (decay would pull
    ``log τ`` towards 0, i.e. ``τ`` towards 1), nor on a ``partial``ly frozen embedding matrix
    (decay would shrink its frozen rows)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decayed = [p for p in params if p.ndim >= 2 and p is not partial]
    groups: list[dict[str, object]] = [
        {"params": decayed, "weight_decay": settings.weight_decay},
        {"params": [p for p in params if p.ndim < 2 or p is partial], "weight_decay": 0.0},
    ]
    if settings.learn_temperature:
        groups.append(
            {
                "params": list(temperature.parameters()),
                "weight_decay": 0.0,
                "lr": settings.temperature_learning_rate,
            }
        )
    return torch.optim.AdamW(groups, lr=settings.learning_rate)
