"""Training loop of the GR: multi-task binary cross-entropy at every training impression,
AdamW, bf16 autocast on CUDA."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from models.gr.batches import batches
from models.gr.config import GRConfig
from models.gr.dataset import GRDataset
from models.gr.evaluate import EvalReport, cosine_report, gr_report, predict_holdout
from models.gr.model import GenerativeRecommender
from models.gr.train_settings import GRTrainSettings

log = logging.getLogger(__name__)


class TrainResult(NamedTuple):
    """The trained model, mean loss per epoch, held-out reports and the wall time."""

    model: GenerativeRecommender
    epoch_losses: list[float]
    gr: EvalReport
    cosine: EvalReport
    seconds: float


def train_gr(
    dataset: GRDataset,
    config: GRConfig,
    settings: GRTrainSettings,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train a GR on ``dataset``'s training impressions and evaluate on the held-out ones."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    device = settings.torch_device()
    model = GenerativeRecommender(config).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    started, losses = time.perf_counter(), []
    for epoch in range(settings.epochs):
        losses.append(_epoch(model, optimizer, dataset, settings, rng, device))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    holdout = predict_holdout(model, dataset, device, settings.batch_size)
    return TrainResult(
        model=model,
        epoch_losses=losses,
        gr=gr_report(holdout, config.tasks, config.task_weights),
        cosine=cosine_report(dataset, holdout, config.tasks),
        seconds=time.perf_counter() - started,
    )


def _epoch(
    model: GenerativeRecommender,
    optimizer: torch.optim.Optimizer,
    dataset: GRDataset,
    settings: GRTrainSettings,
    rng: np.random.Generator,
    device: torch.device,
) -> float:
    model.train()
    total, count = 0.0, 0
    for batch in batches(
        dataset.sequences, dataset.catalog, model.config, settings.batch_size, rng
    ):
        train = batch.targets & (batch.ts_ms < dataset.split_ms)  # (B, L)
        if not train.any():
            continue
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(batch.inputs.to(device))  # (B, L, N)
        mask = train.to(device)
        loss = F.binary_cross_entropy_with_logits(
            logits[mask].float(), batch.labels.to(device)[mask]
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        n = int(train.sum())
        total, count = total + loss.detach().item() * n, count + n
    return total / max(count, 1)
