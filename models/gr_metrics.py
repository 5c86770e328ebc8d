"""Offline metrics of the multi-task ranker: ROC AUC per task and NDCG@k per ranking group.

NumPy only (no torch), so evaluation runs wherever the scores were saved. Both functions are
vectorised: no Python loop over rows, tasks or groups.

Example::

    aucs = multilabel_auc(scores, labels)                   # (N, T), (N, T) -> (T,)
    ndcg = ndcg_at_k(scores[:, 0], gains, member_ids, k=10)  # (N,), (N,), (N,) -> float
"""

from __future__ import annotations

import numpy as np


def multilabel_auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each column (task) of ``scores`` against the 0/1 ``labels`` of that column.

    Uses the Mann–Whitney U statistic on ranks of all columns at once; tied scores get their
    average rank, so a tie between a positive and a negative counts one half.

    Args:
        scores: (N, T) scores, higher means more likely positive; no NaN.
        labels: (N, T) bool, or ints that are all 0 or 1.

    Returns:
        (T,) float64 AUCs; NaN for a column with no positives or no negatives.

    Raises:
        ValueError: shapes differ or are not 2-D, N is 0, NaN scores, labels not 0/1.

    Example::

        >>> multilabel_auc(np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]]),
        ...                np.array([[0, 1], [1, 0], [1, 1]]))
        array([1., 1.])
    """
    scores, positive = _check_auc_inputs(scores, labels)
    n = scores.shape[0]
    order = np.argsort(scores, axis=0, kind="stable")  # (N, T)
    ordered = np.take_along_axis(scores, order, axis=0)  # (N, T), ascending per column
    rows = np.broadcast_to(np.arange(n)[:, None], ordered.shape)  # (N, T)
    starts_tie = np.ones(ordered.shape, dtype=bool)
    starts_tie[1:] = ordered[1:] != ordered[:-1]
    ends_tie = np.ones(ordered.shape, dtype=bool)
    ends_tie[:-1] = starts_tie[1:]
    # first and last sorted row of each element's run of equal scores
    first = np.maximum.accumulate(np.where(starts_tie, rows, 0), axis=0)
    last = np.minimum.accumulate(np.where(ends_tie, rows, n - 1)[::-1], axis=0)[::-1]
    ranks = np.empty(ordered.shape, dtype=np.float64)  # (N, T), 1-based average ranks
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=0)
    n_pos = positive.sum(axis=0).astype(np.float64)  # (T,)
    n_neg = n - n_pos
    u = np.where(positive, ranks, 0.0).sum(axis=0) - n_pos * (n_pos + 1) / 2.0  # (T,)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = u / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def ndcg_at_k(scores: np.ndarray, gains: np.ndarray, groups: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over ranking groups (e.g. one ranking per member).

    Within a group items are ranked by descending score; DCG@k = sum of gain_i / log2(i + 2)
    over the top k positions i = 0..k-1 (linear gains, no ``2**gain - 1``). Groups whose ideal
    DCG is 0 (no positive gain) are skipped. Tied scores keep their input order (a stable
    sort), so the result is deterministic but does depend on the order of tied rows.

    Args:
        scores: (N,) scores, no NaN.
        gains: (N,) non-negative, finite relevance gains.
        groups: (N,) group ids, ints or strings.
        k: cut-off, at least 1; groups smaller than k are ranked in full.

    Returns:
        The mean NDCG@k over qualifying groups, or NaN when no group qualifies.

    Example::

        >>> ndcg_at_k(np.array([0.9, 0.1, 0.5, 0.7, 0.3]),   # m1 right, m2 wrong at k=1,
        ...           np.array([1.0, 0.0, 1.0, 0.0, 0.0]),   # m3 has no gain: skipped
        ...           np.array(["m1", "m1", "m2", "m2", "m3"]), k=1)
        0.5
    """
    scores, gains, codes = _check_ndcg_inputs(scores, gains, groups, k)
    counts = np.bincount(codes)  # (G,)
    by_score = np.lexsort((-scores, codes))  # (N,) group, then descending score (stable)
    ideal = np.lexsort((-gains, codes))  # (N,) group, then descending gain
    sorted_codes = codes[by_score]  # == codes[ideal]: both sorts order by group first
    position = np.arange(codes.size) - (np.cumsum(counts) - counts)[sorted_codes]  # (N,)
    discount = np.where(position < k, 1.0 / np.log2(position + 2.0), 0.0)  # (N,)
    dcg = np.bincount(sorted_codes, gains[by_score] * discount, minlength=counts.size)
    idcg = np.bincount(sorted_codes, gains[ideal] * discount, minlength=counts.size)
    qualifies = idcg > 0
    if not qualifies.any():
        return float("nan")
    return float(np.mean(dcg[qualifies] / idcg[qualifies]))


def _check_auc_inputs(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(
            f"scores and labels must both be (N, T); got {scores.shape} and {labels.shape} "
            "(reshape a single task with .reshape(-1, 1))"
        )
    if scores.shape[0] == 0:
        raise ValueError("multilabel_auc needs at least one row (N == 0)")
    if np.isnan(scores).any():
        raise ValueError(f"scores hold {int(np.isnan(scores).sum())} NaN values")
    if labels.dtype != bool and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be bool or 0/1; found other values")
    return scores, labels.astype(bool)


def _check_ndcg_inputs(
    scores: np.ndarray, gains: np.ndarray, groups: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores, gains = np.asarray(scores, dtype=np.float64), np.asarray(gains, dtype=np.float64)
    groups = np.asarray(groups)
    if not scores.ndim == gains.ndim == groups.ndim == 1 or not (
        scores.size == gains.size == groups.size
    ):
        raise ValueError(
            f"scores, gains and groups must be 1-D of one length N; got shapes {scores.shape}, "
            f"{gains.shape} and {groups.shape}"
        )
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if np.isnan(scores).any():
        raise ValueError(f"scores hold {int(np.isnan(scores).sum())} NaN values")
    if not (np.isfinite(gains) & (gains >= 0)).all():
        raise ValueError("gains must be finite and non-negative")
    _, codes = np.unique(groups, return_inverse=True)  # (N,) dense group codes 0..G-1
    return scores, gains, codes.reshape(-1)
