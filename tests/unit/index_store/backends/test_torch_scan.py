"""TorchScanBackend on CPU float32 equals the exact flat backend; slots are reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from index_store.backends import BackendError, FlatBackend, TorchScanBackend
from index_store.backends import torch_scan as torch_scan_module


@pytest.fixture
def scan(data) -> TorchScanBackend:
    backend = TorchScanBackend(data.vectors.shape[1], "cpu", "float32", capacity=1)
    backend.add(data.ids[:1_000], data.vectors[:1_000])  # grows by doubling
    backend.add(data.ids[1_000:], data.vectors[1_000:])
    return backend


@pytest.fixture
def flat(data) -> FlatBackend:
    backend = FlatBackend(data.vectors.shape[1])
    backend.add(data.ids, data.vectors)
    return backend


def assert_same(got, want) -> None:
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)


def test_equals_flat(scan, flat, data) -> None:
    assert_same(scan.search(data.queries, 10), flat.search(data.queries, 10))
    # k past the size: everything, then padding (near-ties may order differently, so sets).
    (scores, ids), (want_scores, want_ids) = (
        scan.search(data.queries, 5_000),
        flat.search(data.queries, 5_000),
    )
    assert (ids[:, 4_000:] == -1).all() and np.isneginf(scores[:, 4_000:]).all()
    for row, want_row in zip(ids, want_ids, strict=True):
        assert set(row) == set(want_row)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_small_chunks_merge_to_the_same_answer(scan, flat, data, monkeypatch) -> None:
    # 4 * 50 queries * 7 rows: chunks of 7 slots, so the running top-k merge does the work.
    monkeypatch.setattr(torch_scan_module, "SCORE_CHUNK_BYTES", 4 * 50 * 7)
    assert_same(scan.search(data.queries, 10), flat.search(data.queries, 10))


def test_remove_reuses_slots_and_ids_never_come_back(scan, flat, data) -> None:
    capacity = scan._x.shape[0]
    gone = data.ids[::4]
    scan.remove(np.concatenate([gone, [10**9]]))
    flat.remove(gone)
    assert len(scan) == len(flat)
    assert_same(scan.search(data.queries, 10), flat.search(data.queries, 10))
    _, ids = scan.search(data.queries, 4_000)
    assert not np.isin(ids, gone).any()
    fresh = np.arange(len(gone)) + 100_000
    scan.add(fresh, data.vectors[::4])
    flat.add(fresh, data.vectors[::4])
    assert scan._x.shape[0] == capacity  # freed slots were reused
    assert_same(scan.search(data.queries, 10), flat.search(data.queries, 10))
    scan.add(gone[:1], data.vectors[:1])  # re-add of a removed id
    np.testing.assert_array_equal(scan.reconstruct(gone[:1]), data.vectors[:1])


@pytest.mark.parametrize("share", [0.1, 0.001])
def test_allowed_mask_equals_flat(scan, flat, data, mask_of, share) -> None:
    allowed = mask_of(data.ids, share)
    got = scan.search(data.queries, 10, allowed)
    assert ((got[1] >= 0).sum(axis=1) == min(10, int(allowed.sum()))).all()
    assert_same(got, flat.search(data.queries, 10, allowed))
    short = allowed[: int(data.ids[2_000])]  # ids past its end are not allowed
    assert_same(scan.search(data.queries, 10, short), flat.search(data.queries, 10, short))


def test_reconstruct_ids_memory(scan, data) -> None:
    np.testing.assert_array_equal(scan.reconstruct(data.ids[[9, 2]]), data.vectors[[9, 2]])
    assert sorted(scan.ids()) == sorted(data.ids)
    n, dim = data.vectors.shape
    assert 4 * dim * n <= scan.memory_bytes() <= 2 * (4 * dim + 17) * n + 8 * 3 * n
    with pytest.raises(BackendError):
        scan.reconstruct(np.array([6]))
    assert scan.maintain() is False


def test_empty_and_padded(data) -> None:
    backend = TorchScanBackend(data.vectors.shape[1])
    scores, ids = backend.search(data.queries[:2], 3)
    assert (ids == -1).all() and np.isneginf(scores).all()
    backend.add(data.ids[:2], data.vectors[:2])
    scores, ids = backend.search(data.queries[:2], 3)
    assert (ids[:, 2] == -1).all() and (ids[:, :2] >= 0).all()


def test_save_load_gives_identical_results(scan, data, tmp_path: Path) -> None:
    scan.remove(data.ids[:10])
    scan.save(tmp_path / "scan.pt")
    loaded = TorchScanBackend.load(tmp_path / "scan.pt", data.vectors.shape[1])
    for got, want in zip(
        loaded.search(data.queries, 10), scan.search(data.queries, 10), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(BackendError, match="16-d"):
        TorchScanBackend.load(tmp_path / "scan.pt", 16)


def test_half_precision_storage_on_cpu(flat, data, recall) -> None:
    backend = TorchScanBackend(data.vectors.shape[1], "cpu", "float16")
    backend.add(data.ids, data.vectors)
    np.testing.assert_allclose(backend.reconstruct(data.ids[:5]), data.vectors[:5], atol=1e-3)
    scores, ids = backend.search(data.queries, 10)
    want_scores, want_ids = flat.search(data.queries, 10)
    assert recall(ids, want_ids) >= 0.95
    np.testing.assert_allclose(scores, want_scores, atol=5e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_cuda_matches_flat(flat, data, recall, mask_of, dtype) -> None:
    backend = TorchScanBackend(data.vectors.shape[1], "cuda", dtype)
    backend.add(data.ids, data.vectors)
    allowed = mask_of(data.ids, 0.1)
    for mask in (None, allowed):
        scores, ids = backend.search(data.queries, 10, mask)
        want_scores, want_ids = flat.search(data.queries, 10, mask)
        assert recall(ids, want_ids) >= (0.999 if dtype == "float32" else 0.9)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5 if dtype == "float32" else 2e-2)
