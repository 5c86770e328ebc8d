"""``index_store.post_index.PostIndex``: exact kNN with string ids, removal and pre-filters."""

from __future__ import annotations

import numpy as np
import pytest

from index_store import Hit, PostIndex

DIM = 32


def unit_rows(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def filled(vectors: np.ndarray) -> PostIndex:
    index = PostIndex(vectors.shape[1])
    for i, vector in enumerate(vectors):
        index.upsert(f"p{i}", vector)
    return index


def brute_force(
    vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int, exclude: set[str] = frozenset()
) -> list[tuple[str, float]]:
    scores = vectors @ query
    order = [i for i in np.argsort(-scores, kind="stable") if ids[i] not in exclude]
    return [(ids[i], float(scores[i])) for i in order[:k]]


def assert_same(hits: list[Hit], expected: list[tuple[str, float]]) -> None:
    assert [h.post_id for h in hits] == [p for p, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return unit_rows(500)


def test_search_matches_numpy_brute_force(vectors: np.ndarray) -> None:
    index = filled(vectors)
    ids = [f"p{i}" for i in range(len(vectors))]
    for query in unit_rows(20, seed=1):
        assert_same(index.search(query, 10), brute_force(vectors, ids, query, 10))


def test_a_stored_vector_finds_itself_first(vectors: np.ndarray) -> None:
    hit = filled(vectors).search(vectors[123], 1)[0]
    assert hit.post_id == "p123"
    assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_len_and_contains(vectors: np.ndarray) -> None:
    index = filled(vectors[:3])
    assert len(index) == 3
    assert "p2" in index
    assert "p3" not in index


def test_upsert_replaces_the_vector(vectors: np.ndarray) -> None:
    index = filled(vectors[:50])
    index.upsert("p7", vectors[400])
    assert len(index) == 50
    top = index.search(vectors[400], 1)[0]
    assert top.post_id == "p7"
    assert top.score == pytest.approx(1.0, abs=1e-5)
    assert "p7" not in [h.post_id for h in index.search(vectors[7], 3)[:1]]


def test_remove(vectors: np.ndarray) -> None:
    index = filled(vectors[:50])
    assert index.remove("p3") is True
    assert index.remove("p3") is False
    assert index.remove("never") is False
    assert len(index) == 49
    assert "p3" not in index
    assert all(h.post_id != "p3" for h in index.search(vectors[3], 49))


def test_results_after_many_replacements_and_removals_stay_exact() -> None:
    rng = np.random.default_rng(3)
    pool = unit_rows(1_000, seed=4)  # a fresh vector per step: no ties
    truth: dict[str, np.ndarray] = {}
    index = PostIndex(DIM)
    for step in range(1_000):
        post_id = f"p{rng.integers(0, 120)}"
        if rng.random() < 0.25:
            assert index.remove(post_id) is (post_id in truth)
            truth.pop(post_id, None)
        else:
            vector = pool[step]
            index.upsert(post_id, vector)
            truth[post_id] = vector
    assert len(index) == len(truth)
    ids = list(truth)
    matrix = np.stack([truth[p] for p in ids])
    for query in unit_rows(10, seed=5):
        assert_same(index.search(query, 15), brute_force(matrix, ids, query, 15))


def test_exclusion_still_returns_k_when_999_in_1000_are_excluded() -> None:
    vectors = unit_rows(5_000, seed=6)
    index = filled(vectors)
    ids = [f"p{i}" for i in range(len(vectors))]
    eligible = {"p17", "p999", "p2500", "p4242", "p4999"}
    exclude = set(ids) - eligible
    query = unit_rows(1, seed=7)[0]
    hits = index.search(query, 5, exclude=exclude)
    assert {h.post_id for h in hits} == eligible
    assert_same(hits, brute_force(vectors, ids, query, 5, exclude))


def test_exclusion_matches_brute_force(vectors: np.ndarray) -> None:
    index = filled(vectors)
    ids = [f"p{i}" for i in range(len(vectors))]
    query = unit_rows(1, seed=8)[0]
    top = [h.post_id for h in index.search(query, 20)]
    exclude = set(top[::2]) | {"unknown-id"}
    assert_same(
        index.search(query, 10, exclude=exclude), brute_force(vectors, ids, query, 10, exclude)
    )


def test_k_larger_than_the_index_returns_everything(vectors: np.ndarray) -> None:
    index = filled(vectors[:7])
    hits = index.search(vectors[0], 100)
    assert sorted(h.post_id for h in hits) == sorted(f"p{i}" for i in range(7))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_k_larger_than_eligible_returns_all_eligible(vectors: np.ndarray) -> None:
    index = filled(vectors[:7])
    hits = index.search(vectors[0], 100, exclude=["p0", "p1"])
    assert sorted(h.post_id for h in hits) == [f"p{i}" for i in range(2, 7)]


def test_empty_index_and_zero_k(vectors: np.ndarray) -> None:
    assert PostIndex(DIM).search(vectors[0], 5) == []
    assert filled(vectors[:3]).search(vectors[0], 0) == []
    assert filled(vectors[:3]).search(vectors[0], 5, exclude=["p0", "p1", "p2"]) == []


def test_scores_are_cosine_similarity() -> None:
    index = PostIndex(2)
    index.upsert("same", np.array([1.0, 0.0]))
    index.upsert("orthogonal", np.array([0.0, 1.0]))
    index.upsert("opposite", np.array([-1.0, 0.0]))
    hits = index.search(np.array([1.0, 0.0]), 3)
    assert [(h.post_id, round(h.score, 6)) for h in hits] == [
        ("same", 1.0),
        ("orthogonal", 0.0),
        ("opposite", -1.0),
    ]


def test_duplicate_exclusions_do_not_shrink_k() -> None:
    index = PostIndex(2)
    for i, vector in enumerate([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]):
        index.upsert(f"p{i}", np.array(vector))
    hits = index.search(np.array([1.0, 1.0]) / np.sqrt(2), 2, exclude=["p1", "p1"])
    assert len(hits) == 2
