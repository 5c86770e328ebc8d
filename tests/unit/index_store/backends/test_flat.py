"""FlatBackend: exact, so every answer equals the numpy brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index_store.backends import BackendError, FlatBackend


@pytest.fixture
def flat(data) -> FlatBackend:
    backend = FlatBackend(data.vectors.shape[1])
    backend.add(data.ids, data.vectors)
    return backend


def test_search_equals_brute_force(flat, data, brute_force) -> None:
    scores, ids = flat.search(data.queries, 10)
    true_scores, true_ids = brute_force(data.ids, data.vectors, data.queries, 10)
    np.testing.assert_array_equal(ids, true_ids)
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)
    assert scores.dtype == np.float32 and ids.dtype == np.int64


def test_removed_ids_never_come_back_and_readd_works(flat, data) -> None:
    gone = data.ids[:2000:2]
    flat.remove(np.concatenate([gone, [10**9]]))  # an unknown id is ignored
    assert len(flat) == len(data.ids) - len(gone)
    _, ids = flat.search(data.queries, len(data.ids))
    assert not np.isin(ids, gone).any()
    flat.add(gone[:1], -data.queries[:1])
    _, ids = flat.search(-data.queries[:1], 1)
    assert ids[0, 0] == gone[0]


@pytest.mark.parametrize("share", [0.1, 0.001])
def test_allowed_mask_returns_exactly_min_k_eligible(flat, data, brute_force, mask_of, share):
    allowed = mask_of(data.ids, share)
    scores, ids = flat.search(data.queries, 10, allowed)
    true_scores, true_ids = brute_force(data.ids, data.vectors, data.queries, 10, allowed)
    eligible = int(allowed.sum())
    assert ((ids >= 0).sum(axis=1) == min(10, eligible)).all()
    np.testing.assert_array_equal(ids, true_ids)
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)


def test_mask_shorter_than_ids_disallows_the_rest(flat, data) -> None:
    allowed = np.ones(int(data.ids[100]), dtype=bool)  # ids >= ids[100] are past its end
    _, ids = flat.search(data.queries, 200, allowed)
    assert ((ids >= 0).sum(axis=1) == 100).all()
    assert ids.max() < data.ids[100]


def test_k_past_size_is_padded(data) -> None:
    backend = FlatBackend(data.vectors.shape[1])
    backend.add(data.ids[:3], data.vectors[:3])
    scores, ids = backend.search(data.queries[:2], 5)
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert np.isfinite(scores[:, :3]).all()


def test_reconstruct_ids_and_memory(flat, data) -> None:
    np.testing.assert_array_equal(flat.reconstruct(data.ids[[7, 3]]), data.vectors[[7, 3]])
    assert sorted(flat.ids()) == sorted(data.ids)
    n, dim = data.vectors.shape
    assert 4 * dim * n <= flat.memory_bytes() <= 2 * 4 * dim * n + 100 * n
    with pytest.raises(BackendError):
        flat.reconstruct(np.array([1]))
    assert flat.maintain() is False


def test_save_load_gives_identical_results(flat, data, tmp_path: Path) -> None:
    flat.remove(data.ids[:10])
    flat.save(tmp_path / "flat.faiss")
    loaded = FlatBackend.load(tmp_path / "flat.faiss", data.vectors.shape[1])
    for got, want in zip(
        loaded.search(data.queries, 10), flat.search(data.queries, 10), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(BackendError, match="16-d"):
        FlatBackend.load(tmp_path / "flat.faiss", 16)


def test_wrong_vector_shape_is_rejected(flat) -> None:
    with pytest.raises(BackendError, match="shape"):
        flat.add(np.array([1]), np.zeros((1, 5), dtype=np.float32))
    with pytest.raises(BackendError, match="k must be"):
        flat.search(np.zeros((1, flat.dim), dtype=np.float32), 0)


@pytest.mark.parametrize("after", ["add", "remove", "nothing"])
def test_replace_overwrites_in_place_like_remove_then_add(flat, data, brute_force, after) -> None:
    if after == "remove":  # rows were compacted: the id -> row map must be rebuilt
        flat.remove(data.ids[:50])
    elif after == "add":
        flat.add(np.array([10**6, 10**6 + 1]), data.queries[:2])
    targets = data.ids[100:400:3]
    new = np.roll(data.vectors[100:400:3], 1, axis=0)
    flat.replace(targets, new)
    np.testing.assert_array_equal(flat.reconstruct(targets), new)
    np.testing.assert_array_equal(flat.reconstruct(data.ids[60:99]), data.vectors[60:99])
    ids = flat.ids()
    expected_vectors = {int(i): v for i, v in zip(ids, flat.reconstruct(ids), strict=True)}
    assert len(flat) == len(expected_vectors)
    scores, found = flat.search(data.queries, 10)
    keys = np.array(list(expected_vectors))
    true_scores, true_ids = brute_force(
        keys, np.stack(list(expected_vectors.values())), data.queries, 10
    )
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)
    np.testing.assert_array_equal(found, true_ids)
    with pytest.raises(BackendError, match="not present"):
        flat.replace(np.array([10**7]), data.vectors[:1])
