"""Leave-one-out ranking metrics: exclusions, ties against the target, sampled negatives."""

from __future__ import annotations

import math

import numpy as np

from models.dual.loo_metrics import metrics_of, sampled_ranks, target_ranks


def test_history_is_excluded_but_never_the_target() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.2, 0.9, 0.9, 0.3]])
    ranks = target_ranks(
        scores, np.array([2, 1]), [np.array([0, 2]), np.array([0])]
    )  # row 0: item 0 is history, the target is listed too and stays
    assert ranks.tolist() == [1, 1]  # row 1: a tie with item 2 counts against the target


def test_a_constant_scorer_gets_no_credit() -> None:
    scores = np.zeros((3, 20))
    ranks = target_ranks(scores, np.array([0, 5, 19]), [np.array([], np.int64)] * 3)
    assert ranks.tolist() == [19, 19, 19]
    assert metrics_of(ranks).hr_at_10 == 0.0


def test_sampled_negatives_count_duplicates_as_stored() -> None:
    scores = np.array([[0.5, 0.9, 0.1, 0.5]])
    ranks = sampled_ranks(scores, np.array([0]), [np.array([1, 1, 2, 3])])
    assert ranks.tolist() == [3]  # item 1 twice, and the tie with item 3


def test_metrics_from_ranks() -> None:
    metrics = metrics_of(np.array([0, 1, 9, 10, 49, 50]))
    assert metrics.hr_at_10 == 3 / 6
    assert math.isclose(metrics.ndcg_at_10, (1 + 1 / math.log2(3) + 1 / math.log2(11)) / 6)
    assert metrics.recall_at_50 == 5 / 6 and metrics.members == 6
