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
        """Remove every replaced or deleted vector, then add every new one."""
        stale = [i for i, indexed in self._was_indexed.items() if indexed]
        if stale:
            backend.remove(np.array(stale, dtype=np.int64))
        fresh = [(i, v) for i, v in self._vectors.items() if v is not None]
        if fresh:
            ids = np.array([i for i, _ in fresh], dtype=np.int64)
            backend.add(ids, np.stack([v for _, v in fresh]).astype(np.float32, copy=False))
        self._vectors.clear()
        self._was_indexed.clear()
