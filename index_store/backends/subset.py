"""Exact top-k over a given set of ids: for selective filters and approximate-search fallback."""

from __future__ import annotations

import numpy as np

from index_store.backends._arrays import as_ids, as_vectors, check_k
from index_store.backends.base import VectorBackend


def exact_subset_search(
    backend: VectorBackend, ids: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` among ``ids`` (every one must be present in ``backend``).

    Costs ``len(ids)`` reconstructs and a (B, len(ids)) matmul, so it beats a filtered index
    search when a filter matches few posts. Returns ``(scores, ids)``, both (B, k), best first,
    padded with ``-inf`` / -1 when fewer than ``k`` ids are given.
    """
    ids = np.unique(as_ids(ids))
    queries = as_vectors(queries, backend.dim)
    k = check_k(k)
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)  # (B, k)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)  # (B, k)
    if not ids.size:
        return out_scores, out_ids
    scores = queries @ backend.reconstruct(ids).T  # (B, n)
    top = _top_columns(scores, min(k, len(ids)))  # (B, k'), best first
    out_scores[:, : top.shape[1]] = np.take_along_axis(scores, top, axis=1)
    out_ids[:, : top.shape[1]] = ids[top]
    return out_scores, out_ids


def _top_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` largest scores, best first."""
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (B, k), unordered
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
