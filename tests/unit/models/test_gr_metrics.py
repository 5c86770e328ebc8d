"""``models.gr_metrics``: vectorised AUC and NDCG@k against brute-force definitions."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from models.gr_metrics import multilabel_auc, ndcg_at_k


def pairwise_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUC by definition: P(positive outscores negative), ties count one half."""
    pos, neg = scores[labels.astype(bool)], scores[~labels.astype(bool)]
    if not pos.size or not neg.size:
        return math.nan
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return float(wins / (pos.size * neg.size))


def slow_ndcg(scores: list[float], gains: list[float], groups: list[object], k: int) -> float:
    """NDCG@k group by group, items in input order before a stable sort by -score."""
    rows: dict[object, list[tuple[float, float]]] = defaultdict(list)
    for score, gain, group in zip(scores, gains, groups, strict=True):
        rows[group].append((score, gain))
    values = []
    for items in rows.values():
        ranked = [g for _, g in sorted(items, key=lambda item: -item[0])][:k]
        ideal = sorted((g for _, g in items), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        if idcg > 0:
            values.append(sum(g / math.log2(i + 2) for i, g in enumerate(ranked)) / idcg)
    return sum(values) / len(values) if values else math.nan


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_definition_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, tasks = int(rng.integers(2, 80)), 6
    scores = np.round(rng.random((n, tasks)), 1)  # (N, T), many ties
    labels = (rng.random((n, tasks)) < rng.random(tasks)).astype(np.int64)
    labels[:, 0] = 0  # no positives
    labels[:, 1] = 1  # no negatives
    expected = [pairwise_auc(scores[:, t], labels[:, t]) for t in range(tasks)]
    np.testing.assert_allclose(multilabel_auc(scores, labels), expected, equal_nan=True)


def test_auc_perfect_reversed_constant_and_single_class() -> None:
    labels = np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, 1, 1, 0, 1]])
    up = np.arange(4.0)
    scores = np.stack([up, -up, np.full(4, 3.0), up, up], axis=1)  # (4, 5)
    result = multilabel_auc(scores, labels.astype(bool))
    np.testing.assert_array_equal(result[:3], [1.0, 0.0, 0.5])
    assert np.isnan(result[3:]).all()


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (np.zeros((3, 2)), np.zeros((3, 1)), "must both be"),
        (np.zeros(3), np.zeros(3), "must both be"),
        (np.zeros((0, 2)), np.zeros((0, 2)), "N == 0"),
        (np.full((2, 1), np.nan), np.array([[0], [1]]), "NaN"),
        (np.zeros((2, 1)), np.array([[0], [2]]), "0/1"),
    ],
)
def test_auc_refuses_bad_inputs(scores: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        multilabel_auc(scores, labels)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 10, 1000])
def test_ndcg_matches_per_group_definition(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    scores = np.round(rng.random(n), 1)  # ties: broken by input order
    gains = rng.choice([0.0, 0.0, 1.0, 2.5], size=n)
    groups = rng.integers(0, 25, size=n)  # some groups small, some with no gain
    expected = slow_ndcg(scores.tolist(), gains.tolist(), groups.tolist(), k)
    assert ndcg_at_k(scores, gains, groups, k) == pytest.approx(expected, rel=1e-12)
    names = np.array([f"m{g:03d}" for g in groups])
    assert ndcg_at_k(scores, gains, names, k) == pytest.approx(expected, rel=1e-12)


def test_ndcg_perfect_order_skips_gainless_groups_and_short_groups() -> None:
    gains = np.array([3.0, 1.0, 0.0, 0.0, 0.0, 2.0])
    groups = np.array([7, 7, 7, 8, 8, 9])  # group 8 has no gain: skipped
    assert ndcg_at_k(gains, gains, groups, k=50) == 1.0  # k beyond every group's size
    reversed_7 = ndcg_at_k(-gains, gains, groups, k=50)  # group 9 alone is still perfect
    best, worst = 3 + 1 / math.log2(3), 1 / math.log2(3) + 3 / math.log2(4)
    assert reversed_7 == pytest.approx((worst / best + 1.0) / 2)


def test_ndcg_ties_keep_input_order_and_nan_without_gains() -> None:
    tied = np.zeros(2)
    first = ndcg_at_k(tied, np.array([1.0, 0.0]), np.array([0, 0]), k=1)
    second = ndcg_at_k(tied, np.array([0.0, 1.0]), np.array([0, 0]), k=1)
    assert (first, second) == (1.0, 0.0)
    assert math.isnan(ndcg_at_k(np.ones(3), np.zeros(3), np.arange(3)))
    assert math.isnan(ndcg_at_k(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)))


@pytest.mark.parametrize(
    ("gains", "k", "message"),
    [(np.array([1.0, -1.0]), 10, "non-negative"), (np.ones(2), 0, "at least 1")],
)
def test_ndcg_refuses_bad_inputs(gains: np.ndarray, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ndcg_at_k(np.zeros(2), gains, np.zeros(2), k)
    with pytest.raises(ValueError, match="1-D of one length"):
        ndcg_at_k(np.zeros(3), np.zeros(2), np.zeros(2))
