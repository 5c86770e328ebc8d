"""exact_subset_search: exact top-k over just the given ids, on any backend."""

from __future__ import annotations

import numpy as np
import pytest

from index_store.backends import FlatBackend, HnswBackend, IvfBackend, exact_subset_search


@pytest.mark.parametrize(
    "make",
    [
        lambda dim: FlatBackend(dim),
        lambda dim: IvfBackend(dim, nlist=8, nprobe=1, train_min=500),
        lambda dim: HnswBackend(dim, m=8, ef_construction=20, ef_search=8),
    ],
    ids=["flat", "ivf", "hnsw"],
)
def test_equals_brute_force_over_the_subset(make, data, brute_force) -> None:
    backend = make(data.vectors.shape[1])
    backend.add(data.ids[:1_000], data.vectors[:1_000])
    subset = data.ids[:1_000:7]
    allowed = np.zeros(int(data.ids.max()) + 1, dtype=bool)
    allowed[subset] = True
    scores, ids = exact_subset_search(backend, subset, data.queries, 10)
    want_scores, want_ids = brute_force(
        data.ids[:1_000], data.vectors[:1_000], data.queries, 10, allowed
    )
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_fewer_ids_than_k_are_padded_and_duplicates_ignored(data) -> None:
    backend = FlatBackend(data.vectors.shape[1])
    backend.add(data.ids[:100], data.vectors[:100])
    scores, ids = exact_subset_search(backend, data.ids[[3, 3, 8]], data.queries[:4], 5)
    assert ids.shape == (4, 5)
    assert ((ids[:, :2] >= 0).all()) and (ids[:, 2:] == -1).all()
    assert np.isneginf(scores[:, 2:]).all() and (scores[:, 0] >= scores[:, 1]).all()


def test_no_ids(data) -> None:
    backend = FlatBackend(data.vectors.shape[1])
    scores, ids = exact_subset_search(backend, np.empty(0, dtype=np.int64), data.queries[:2], 3)
    assert (ids == -1).all() and np.isneginf(scores).all()
