"""Held-out evaluation: per-task AUC and NDCG@10 of the GR and of cosine-only ranking.

Held-out impressions are those at or after the dataset's split time. The GR predicts each one
from everything the member did before it (a causal pass over the whole log). NDCG@10 ranks
each member's held-out impressions; the gain is 1 for a positive engagement (long dwell,
like, comment or share: what the member history keeps), else 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from models.gr.batches import batches
from models.gr.dataset import GRDataset
from models.gr.model import GenerativeRecommender
from models.gr_metrics import multilabel_auc, ndcg_at_k

POSITIVE_TASKS = ("long_dwell", "like", "comment", "share")


class Holdout(NamedTuple):
    """Held-out impressions (``n``) with the GR's task probabilities."""

    probs: np.ndarray
    """(n, N) float task probabilities."""
    labels: np.ndarray
    """(n, N) task labels."""
    members: np.ndarray
    """(n,) int sequence index (one ranking per member)."""
    post_rows: np.ndarray
    """(n,) catalog rows."""


class EvalReport(NamedTuple):
    """Per-task AUC (NaN where a task has one class) and NDCG@10."""

    auc: dict[str, float]
    ndcg_at_10: float
    impressions: int
    members: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (NaN AUCs become None)."""
        auc = {t: (None if np.isnan(v) else round(v, 4)) for t, v in self.auc.items()}
        return {
            "auc": auc,
            "ndcg_at_10": round(self.ndcg_at_10, 4),
            "impressions": self.impressions,
            "members": self.members,
        }


@torch.inference_mode()
def predict_holdout(
    model: GenerativeRecommender, dataset: GRDataset, device: torch.device, batch_size: int = 32
) -> Holdout:
    """The GR's probabilities at every held-out impression."""
    model.eval()
    probs, labels, members, rows = [], [], [], []
    for batch in batches(dataset.sequences, dataset.catalog, model.config, batch_size):
        held = batch.targets & (batch.ts_ms >= dataset.split_ms)  # (B, L)
        if not held.any():
            continue
        logits = model(batch.inputs.to(device)).float().cpu()  # (B, L, N)
        probs.append(torch.sigmoid(logits[held]).numpy())
        labels.append(batch.labels[held].numpy())
        members.append(batch.sequence_index[:, None].expand_as(held)[held].numpy())
        rows.append(batch.post_rows[held].numpy())
    n = len(model.config.tasks)
    if not probs:
        empty = np.zeros((0, n), np.float32)
        return Holdout(empty, empty, np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Holdout(*(np.concatenate(parts) for parts in (probs, labels, members, rows)))


def gr_report(holdout: Holdout, tasks: tuple[str, ...], weights: dict[str, float]) -> EvalReport:
    """AUC of each task's probability; NDCG@10 of the weighted combined score."""
    w = np.array([weights.get(t, 0.0) for t in tasks], np.float32)
    return _report(holdout.probs, holdout.probs @ w, holdout, tasks)


def cosine_report(dataset: GRDataset, holdout: Holdout, tasks: tuple[str, ...]) -> EvalReport:
    """The same impressions ranked by cosine(member profile, post) alone. For ``skip`` the
    score is negated (a less similar post is the likelier skip), so 0.5 means no signal."""
    profiles = (
        np.stack([dataset.sequences[int(i)].profile for i in holdout.members])
        if len(holdout.members)
        else np.zeros((0, dataset.catalog.embeddings.shape[1]), np.float32)
    )
    cosine = (profiles * dataset.catalog.gather(holdout.post_rows)).sum(-1)  # (n,)
    sign = np.array([-1.0 if t == "skip" else 1.0 for t in tasks], np.float32)
    return _report(cosine[:, None] * sign, cosine, holdout, tasks)


def _report(
    task_scores: np.ndarray, ranking: np.ndarray, holdout: Holdout, tasks: tuple[str, ...]
) -> EvalReport:
    if len(ranking) == 0:
        return EvalReport({t: float("nan") for t in tasks}, float("nan"), 0, 0)
    auc = multilabel_auc(task_scores, holdout.labels)
    positive = [tasks.index(t) for t in POSITIVE_TASKS if t in tasks]
    gains = holdout.labels[:, positive].max(axis=1)
    return EvalReport(
        auc=dict(zip(tasks, (float(a) for a in auc), strict=True)),
        ndcg_at_10=float(ndcg_at_k(ranking, gains, holdout.members, k=10)),
        impressions=len(ranking),
        members=len(np.unique(holdout.members)),
    )
