"""Retrieval metrics of a dual encoder on a time split: recall@k, NDCG@10, and the
correlation between post popularity and member–post similarity.

Each evaluated member has the posts they engaged with positively after the split (relevant)
and posts to leave out of their ranking (seen before the split, their own). Every other post
is a candidate; the member's vector ranks them by cosine.

Example:
    >>> import numpy as np
    >>> members = np.eye(2, dtype=np.float32)
    >>> posts = np.eye(2, dtype=np.float32)
    >>> report = retrieval_report(members, posts, [{0}, {1}], [set(), set()], np.array([1, 5]))
    >>> report.recall_at_10, report.ndcg_at_10
    (1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

CHUNK = 256  # members scored per matmul: bounds memory at CHUNK x posts floats


class RetrievalReport(NamedTuple):
    """Means over evaluated members, and the popularity correlation over all pairs."""

    recall_at_10: float
    recall_at_50: float
    ndcg_at_10: float
    popularity_correlation: float
    """Pearson r between post popularity and cosine(member, post), over every
    (evaluated member, post) pair; the published figure is -0.004 with raw counts."""
    members: int
    posts: int

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready, rounded."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self._asdict().items()}


def retrieval_report(
    members: np.ndarray,
    posts: np.ndarray,
    relevant: Sequence[set[int]],
    excluded: Sequence[set[int]],
    popularity: np.ndarray,
) -> RetrievalReport:
    """Metrics for ``members`` (M, D) against ``posts`` (P, D), both L2-normalised; post
    indices in ``relevant``/``excluded`` per member; ``popularity`` (P,)."""
    if len(members) != len(relevant) or len(members) != len(excluded):
        raise ValueError("members, relevant and excluded must have one entry per member")
    recalls10, recalls50, ndcgs = [], [], []
    sums = np.zeros(5)  # running sums for Pearson: x, y, xx, yy, xy
    pop = popularity.astype(np.float64)
    for lo in range(0, len(members), CHUNK):
        scores = members[lo : lo + CHUNK] @ posts.T  # (C, P)
        sums += _pair_sums(pop, scores.astype(np.float64))
        for row, score in enumerate(scores):
            i = lo + row
            r10, r50, ndcg = _member_metrics(score, relevant[i], excluded[i])
            recalls10.append(r10)
            recalls50.append(r50)
            ndcgs.append(ndcg)
    n = len(members) * len(posts)
    return RetrievalReport(
        recall_at_10=float(np.mean(recalls10)) if recalls10 else float("nan"),
        recall_at_50=float(np.mean(recalls50)) if recalls50 else float("nan"),
        ndcg_at_10=float(np.mean(ndcgs)) if ndcgs else float("nan"),
        popularity_correlation=_pearson(sums, n),
        members=len(members),
        posts=len(posts),
    )


def _member_metrics(
    scores: np.ndarray, relevant: set[int], excluded: set[int]
) -> tuple[float, float, float]:
    scores = scores.copy()
    if excluded:
        scores[list(excluded - relevant)] = -np.inf
    top = np.argsort(-scores, kind="stable")[:50]
    hits = np.fromiter((int(p) in relevant for p in top), np.bool_, len(top))
    recall10 = hits[:10].sum() / len(relevant)
    recall50 = hits.sum() / len(relevant)
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ideal = discounts[: min(len(relevant), 10)].sum()
    dcg = (hits[:10] * discounts[: len(hits[:10])]).sum()
    return float(recall10), float(recall50), float(dcg / ideal)


def _pair_sums(popularity: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Sums over the (rows x posts) pairs of x = popularity, y = score."""
    rows = scores.shape[0]
    return np.array(
        [
            rows * popularity.sum(),
            scores.sum(),
            rows * (popularity**2).sum(),
            (scores**2).sum(),
            (scores @ popularity).sum(),
        ]
    )


def _pearson(sums: np.ndarray, n: int) -> float:
    sx, sy, sxx, syy, sxy = sums
    cov = sxy - sx * sy / n
    var = (sxx - sx * sx / n) * (syy - sy * sy / n)
    return float(cov / np.sqrt(var)) if var > 0 else float("nan")
