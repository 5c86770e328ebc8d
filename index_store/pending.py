"""The vector changes of one batch of updates, handed to the backend in two calls."""

from __future__ import annotations

import numpy as np

from index_store.backends import VectorBackend


class PendingVectors:
    """Final vector per touched post id (None: removed), and whether the backend held it
    before the batch, so the flush removes each old vector once and adds each new one once."""

    def __init__(self) -> None:
        self._vectors: dict[int, np.ndarray | None] = {}
        self._was_indexed: dict[int, bool] = {}

    def touch(self, int_id: int, *, was_indexed: bool) -> None:
        """Note the backend state of ``int_id`` before its first change in this batch."""
        self._was_indexed.setdefault(int_id, was_indexed)

    def put(self, int_id: int, vector: np.ndarray) -> None:
        """``int_id`` ends the batch with ``vector``."""
        self._vectors[int_id] = vector

    def drop(self, int_id: int) -> None:
        """``int_id`` ends the batch without a vector."""
        self._vectors[int_id] = None

    def flush(self, backend: VectorBackend) -> None:
        """Remove deleted vectors, replace re-embedded ones, add new ones (one call each)."""
        removed: list[int] = []
        replaced: list[tuple[int, np.ndarray]] = []
        added: list[tuple[int, np.ndarray]] = []
        for int_id, vector in self._vectors.items():
            indexed = self._was_indexed[int_id]
            if vector is None:
                removed += [int_id] if indexed else []
            else:
                (replaced if indexed else added).append((int_id, vector))
        if removed:
            backend.remove(np.array(removed, dtype=np.int64))
        if replaced:
            backend.replace(*_arrays(replaced))
        if added:
            backend.add(*_arrays(added))
        self._vectors.clear()
        self._was_indexed.clear()


def _arrays(pairs: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(ids (n,) int64, vectors (n, dim) float32) from (id, vector) pairs."""
    ids = np.array([i for i, _ in pairs], dtype=np.int64)
    return ids, np.stack([v for _, v in pairs]).astype(np.float32, copy=False)
