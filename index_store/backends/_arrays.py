"""Array helpers shared by the backends: input checks, filter bitmaps, result padding."""

from __future__ import annotations

import numpy as np

from index_store.backends.errors import BackendError


def as_ids(ids: np.ndarray) -> np.ndarray:
    """``ids`` as a contiguous int64 (n,) array."""
    out = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if out.size and out.min() < 0:
        raise BackendError(f"ids must be >= 0, got {int(out.min())}")
    return out


def as_vectors(vectors: np.ndarray, dim: int, rows: int | None = None) -> np.ndarray:
    """``vectors`` as contiguous float32 (n, dim), checking the width (and row count)."""
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    if out.ndim == 1:
        out = out.reshape(1, -1)
    if out.ndim != 2 or out.shape[1] != dim:
        raise BackendError(f"expected vectors of shape (n, {dim}), got {vectors.shape}")
    if rows is not None and out.shape[0] != rows:
        raise BackendError(f"{out.shape[0]} vectors for {rows} ids")
    return out


def check_k(k: int) -> int:
    """``k`` as a positive int."""
    if k < 1:
        raise BackendError(f"k must be >= 1, got {k}")
    return int(k)


def allowed_lookup(allowed: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``allowed[ids]`` where ids at or past the mask's end (or -1) count as not allowed."""
    mask = np.asarray(allowed, dtype=bool)
    inside = (ids >= 0) & (ids < mask.shape[0])
    out = np.zeros(ids.shape, dtype=bool)
    out[inside] = mask[ids[inside]]
    return out


def lookup(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``table[ids]`` (int64) with -1 for ids past the table's end."""
    inside = ids < table.shape[0]
    out = np.full(ids.shape, -1, dtype=np.int64)
    out[inside] = table[ids[inside]]
    return out


def bitmap(mask: np.ndarray) -> np.ndarray:
    """FAISS ``IDSelectorBitmap`` bytes: bit i of byte i // 8 is ``mask[i]`` (little order).

    The selector keeps a pointer, not a copy: the caller must keep the returned array alive
    for as long as the selector is used (the one-argument constructor holds a reference).
    """
    return np.packbits(np.asarray(mask, dtype=bool), bitorder="little")


def finish(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAISS pads with ``-FLT_MAX`` / -1; the interface pads with ``-inf`` / -1."""
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    scores[ids < 0] = -np.inf
    return scores, ids


def grown(array: np.ndarray, size: int, fill: int) -> np.ndarray:
    """``array`` with length >= ``size`` (doubling, new cells ``fill``) so appends amortise."""
    if size <= array.shape[0]:
        return array
    out = np.full(max(size, 2 * array.shape[0], 16), fill, dtype=array.dtype)
    out[: array.shape[0]] = array
    return out
