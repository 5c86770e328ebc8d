"""IvfBackend: exact until ``train_min`` vectors, then approximate with good recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index_store.backends import BackendError, FlatBackend, IvfBackend

NLIST = 16


@pytest.fixture
def ivf(data) -> IvfBackend:
    backend = IvfBackend(data.vectors.shape[1], nlist=NLIST, nprobe=2, train_min=2_000)
    backend.add(data.ids, data.vectors)
    return backend


def test_holds_exact_until_threshold_then_trains(data, brute_force) -> None:
    backend = IvfBackend(data.vectors.shape[1], nlist=NLIST, nprobe=1, train_min=2_000)
    backend.add(data.ids[:1_999], data.vectors[:1_999])
    assert not backend.trained
    got = backend.search(data.queries, 10)
    want = brute_force(data.ids[:1_999], data.vectors[:1_999], data.queries, 10)
    np.testing.assert_array_equal(got[1], want[1])
    assert backend.maintain() is False
    backend.add(data.ids[1_999:], data.vectors[1_999:])
    assert backend.trained and len(backend) == len(data.ids)
    assert sorted(backend.ids()) == sorted(data.ids)
    np.testing.assert_array_equal(backend.reconstruct(data.ids[:5]), data.vectors[:5])


def test_recall_at_10_against_exact(ivf, data, brute_force, recall) -> None:
    _, ids = ivf.search(data.queries, 10)
    _, true_ids = brute_force(data.ids, data.vectors, data.queries, 10)
    assert recall(ids, true_ids) >= 0.9
    ivf.nprobe = NLIST  # every list scanned: exact
    scores, ids = ivf.search(data.queries, 10)
    true_scores, true_ids = brute_force(data.ids, data.vectors, data.queries, 10)
    np.testing.assert_array_equal(ids, true_ids)
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)


def test_remove_after_training_and_readd(ivf, data) -> None:
    gone = data.ids[::3]
    ivf.remove(np.concatenate([gone, [10**9]]))
    assert len(ivf) == len(data.ids) - len(gone)
    ivf.nprobe = NLIST
    _, ids = ivf.search(data.queries, 200)
    assert not np.isin(ids, gone).any()
    with pytest.raises(BackendError):
        ivf.reconstruct(gone[:1])
    ivf.add(gone[:1], data.vectors[:1])
    np.testing.assert_array_equal(ivf.reconstruct(gone[:1]), data.vectors[:1])


@pytest.mark.parametrize("share", [0.1, 0.001])
def test_allowed_mask(ivf, data, brute_force, mask_of, share) -> None:
    allowed = mask_of(data.ids, share)
    eligible = int(allowed.sum())
    _, ids = ivf.search(data.queries, 10, allowed)
    assert allowed[ids[ids >= 0]].all()
    assert ((ids >= 0).sum(axis=1) <= min(10, eligible)).all()
    ivf.nprobe = NLIST  # scanning every list, the filtered answer is exact
    _, ids = ivf.search(data.queries, 10, allowed)
    assert ((ids >= 0).sum(axis=1) == min(10, eligible)).all()
    want = brute_force(data.ids, data.vectors, data.queries, 10, allowed)
    np.testing.assert_array_equal(ids, want[1])


def test_save_load_trained_and_untrained(ivf, data, tmp_path: Path) -> None:
    ivf.remove(data.ids[:10])
    ivf.save(tmp_path / "ivf.faiss")
    loaded = IvfBackend.load(tmp_path / "ivf.faiss", data.vectors.shape[1], 99, 4)
    assert loaded.trained and loaded.nlist == NLIST  # nlist comes from the file
    for got, want in zip(
        loaded.search(data.queries, 10), ivf.search(data.queries, 10), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    loaded.remove(data.ids[10:20])  # the hashtable direct map survived the round trip
    assert len(loaded) == len(data.ids) - 20

    small = IvfBackend(data.vectors.shape[1], nlist=NLIST, train_min=2_000)
    small.add(data.ids[:50], data.vectors[:50])
    small.save(tmp_path / "small.faiss")
    again = IvfBackend.load(tmp_path / "small.faiss", data.vectors.shape[1], NLIST, 4, 2_000)
    assert not again.trained and len(again) == 50


def test_flat_file_is_not_misread(tmp_path: Path) -> None:
    FlatBackend(8).save(tmp_path / "f.faiss")
    with pytest.raises(BackendError, match="8-d"):
        IvfBackend.load(tmp_path / "f.faiss", 4, NLIST, 4)


def test_memory_bytes(ivf, data) -> None:
    n, dim = data.vectors.shape
    assert 4 * dim * n <= ivf.memory_bytes() <= 2 * 4 * dim * n + 100 * n + 4 * dim * NLIST
