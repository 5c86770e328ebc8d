"""Ranking metrics of the leave-one-out protocol: one held-out target per member.

Two protocols, as the literature reports them:

- ``full``: the target ranks against every item except the member's history (the items they
  already interacted with): HSTU, Recformer, UniSRec, LC-Rec;
- ``sampled``: the target ranks against the row's sampled negatives only (99 in SASRec's
  original and in ReChorus/LRD, duplicates kept as stored): not comparable to full ranking.

A tie with the target counts against it (an item scoring the same ranks above), so a
constant scorer gets no credit. With one target, HR@K equals recall@K.

Example:
    >>> import numpy as np
    >>> scores = np.array([[0.9, 0.5, 0.1]])
    >>> target_ranks(scores, np.array([1]), [np.array([], np.int64)])
    array([1])
    >>> target_ranks(scores, np.array([1]), [np.array([0])])   # item 0 is history
    array([0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

CUTOFFS = (10, 50)


class LooMetrics(NamedTuple):
    """Means over the evaluated members."""

    hr_at_10: float
    ndcg_at_10: float
    recall_at_50: float
    members: int

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready, rounded to 4 decimals."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self._asdict().items()}


def target_ranks(
    scores: np.ndarray, targets: np.ndarray, excluded: Sequence[np.ndarray]
) -> np.ndarray:
    """0-based rank of each row's target among all columns, ``excluded`` columns left out
    (the target itself is never excluded); ties count against the target."""
    target_scores = scores[np.arange(len(scores)), targets]  # (C,)
    above = scores >= target_scores[:, None]  # (C, P): the target itself is counted here
    for row, columns in enumerate(excluded):
        if len(columns):
            above[row, columns[columns != targets[row]]] = False
    return above.sum(axis=1) - 1


def sampled_ranks(
    scores: np.ndarray, targets: np.ndarray, negatives: Sequence[np.ndarray]
) -> np.ndarray:
    """0-based rank of each row's target among its ``negatives`` (column ids, duplicates
    counted as stored); ties count against the target."""
    ranks = np.empty(len(scores), np.int64)
    for row, columns in enumerate(negatives):
        ranks[row] = int((scores[row, columns] >= scores[row, targets[row]]).sum())
    return ranks


def metrics_of(ranks: np.ndarray) -> LooMetrics:
    """HR@10, NDCG@10 and recall@50 from 0-based target ranks."""
    if len(ranks) == 0:
        return LooMetrics(float("nan"), float("nan"), float("nan"), 0)
    hit10 = ranks < 10
    ndcg = np.where(hit10, 1.0 / np.log2(ranks + 2.0), 0.0)
    return LooMetrics(
        hr_at_10=float(hit10.mean()),
        ndcg_at_10=float(ndcg.mean()),
        recall_at_50=float((ranks < 50).mean()),
        members=len(ranks),
    )
