from __future__ import annotations

import numpy as np
import pytest

from models.dual.retrieval_eval import retrieval_report


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_metrics_match_a_brute_force_ranking() -> None:
    rng = np.random.default_rng(0)
    members, posts = _unit(rng.normal(size=(30, 8))), _unit(rng.normal(size=(120, 8)))
    relevant = [set(rng.choice(120, size=3, replace=False).tolist()) for _ in range(30)]
    excluded = [set(rng.choice(120, size=20, replace=False).tolist()) for _ in range(30)]
    popularity = rng.poisson(5, size=120)
    report = retrieval_report(members, posts, relevant, excluded, popularity)
    r10, r50, ndcg = [], [], []
    for m in range(30):
        order = [p for p in np.argsort(-(posts @ members[m])) if p not in excluded[m] - relevant[m]]
        r10.append(len(set(order[:10]) & relevant[m]) / 3)
        r50.append(len(set(order[:50]) & relevant[m]) / 3)
        dcg = sum(1 / np.log2(i + 2) for i, p in enumerate(order[:10]) if p in relevant[m])
        ndcg.append(dcg / sum(1 / np.log2(i + 2) for i in range(3)))
    assert report.recall_at_10 == pytest.approx(np.mean(r10))
    assert report.recall_at_50 == pytest.approx(np.mean(r50))
    assert report.ndcg_at_10 == pytest.approx(np.mean(ndcg))
    pairs = (members @ posts.T).ravel()
    expected = np.corrcoef(np.tile(popularity, 30), pairs)[0, 1]
    assert report.popularity_correlation == pytest.approx(expected, abs=1e-6)
    assert (report.members, report.posts) == (30, 120)


def test_a_post_seen_before_the_split_is_not_retrieved_but_relevant_ones_stay() -> None:
    members = np.array([[1.0, 0.0]], np.float32)
    posts = _unit(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]))
    report = retrieval_report(members, posts, [{2}], [{0, 1}], np.array([1, 1, 1]))
    assert report.recall_at_10 == 1.0 and report.ndcg_at_10 == 1.0  # 2 is the only candidate
    with pytest.raises(ValueError, match="one entry per member"):
        retrieval_report(members, posts, [], [], np.array([1, 1, 1]))
