"""HnswBackend: good recall, removal by tombstones, rebuilt by ``maintain``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index_store.backends import BackendError, HnswBackend, exact_subset_search


@pytest.fixture
def hnsw(data) -> HnswBackend:
    backend = HnswBackend(data.vectors.shape[1], m=16, ef_construction=40, ef_search=32)
    backend.add(data.ids[:1_000], data.vectors[:1_000])
    backend.add(data.ids[1_000:], data.vectors[1_000:])
    return backend


def test_recall_at_10_against_exact(hnsw, data, brute_force, recall) -> None:
    scores, ids = hnsw.search(data.queries, 10)
    _, true_ids = brute_force(data.ids, data.vectors, data.queries, 10)
    assert recall(ids, true_ids) >= 0.9
    expected = np.einsum(
        "bd,bkd->bk", data.queries, hnsw.reconstruct(ids.ravel()).reshape(*ids.shape, -1)
    )
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_tombstones_then_rebuild(hnsw, data, brute_force, recall) -> None:
    gone = data.ids[::10]  # 10% < rebuild_fraction 20%
    hnsw.remove(np.concatenate([gone, [10**9]]))
    assert len(hnsw) == len(data.ids) - len(gone) and hnsw.nodes == len(data.ids)
    assert hnsw.maintain() is False
    _, ids = hnsw.search(data.queries, 50)
    assert not np.isin(ids, gone).any()
    more = data.ids[1::10]
    hnsw.remove(more)  # now 20% tombstones
    assert hnsw.maintain() is True
    assert hnsw.nodes == len(hnsw) == len(data.ids) - 2 * len(gone)
    _, ids = hnsw.search(data.queries, 10)
    keep = ~np.isin(data.ids, np.concatenate([gone, more]))
    _, true_ids = brute_force(data.ids[keep], data.vectors[keep], data.queries, 10)
    assert recall(ids, true_ids) >= 0.9
    with pytest.raises(BackendError):
        hnsw.reconstruct(gone[:1])


def test_readd_of_removed_id(hnsw, data) -> None:
    hnsw.remove(data.ids[:1])
    hnsw.add(data.ids[:1], -data.queries[:1])
    _, ids = hnsw.search(-data.queries[:1], 1)
    assert ids[0, 0] == data.ids[0]
    np.testing.assert_array_equal(hnsw.reconstruct(data.ids[:1]), -data.queries[:1])


def test_allowed_mask(hnsw, data, brute_force, mask_of) -> None:
    allowed = mask_of(data.ids, 0.1)
    _, ids = hnsw.search(data.queries, 10, allowed)
    assert allowed[ids[ids >= 0]].all()
    assert ((ids >= 0).sum(axis=1) == 10).all()
    hnsw.remove(data.ids[allowed[data.ids]][:5])  # tombstones stay excluded under a mask
    _, ids = hnsw.search(data.queries, 10, allowed)
    assert allowed[ids[ids >= 0]].all() and not np.isin(ids, data.ids[allowed[data.ids]][:5]).any()


def test_selective_mask_may_fall_short_and_subset_search_fills_it(hnsw, data, mask_of):
    allowed = mask_of(data.ids, 0.001)  # 4 posts
    eligible = data.ids[allowed[data.ids]]
    _, ids = hnsw.search(data.queries, 10, allowed)
    assert np.isin(ids[ids >= 0], eligible).all()
    assert ((ids >= 0).sum(axis=1) <= len(eligible)).all()
    _, exact_ids = exact_subset_search(hnsw, eligible, data.queries, 10)
    assert ((exact_ids >= 0).sum(axis=1) == len(eligible)).all()


def test_save_load_gives_identical_results(hnsw, data, tmp_path: Path) -> None:
    hnsw.remove(data.ids[:10])
    hnsw.save(tmp_path / "hnsw.npz")
    loaded = HnswBackend.load(tmp_path / "hnsw.npz", data.vectors.shape[1], ef_search=32)
    assert (loaded.m, loaded.nodes, len(loaded)) == (16, hnsw.nodes, len(hnsw))
    for got, want in zip(
        loaded.search(data.queries, 10), hnsw.search(data.queries, 10), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    loaded.remove(data.ids[10:20])
    assert len(loaded) == len(data.ids) - 20
    with pytest.raises(BackendError, match="16-d"):
        HnswBackend.load(tmp_path / "hnsw.npz", 16)


def test_memory_bytes_counts_the_graph(hnsw, data) -> None:
    n, dim = data.vectors.shape
    assert (
        4 * dim * n + 4 * 16 * n <= hnsw.memory_bytes() <= 4 * dim * n + 4 * 2 * 16 * n * 2 + 64 * n
    )
