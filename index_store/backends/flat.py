"""Exact kNN with FAISS ``IndexIDMap2(IndexFlatIP)``: the CPU default and the recall baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_store.backends._arrays import (
    as_ids,
    as_vectors,
    bitmap,
    check_k,
    finish,
    grown,
    lookup,
)
from index_store.backends._faiss import remove_by_id, search_params, use_blas_for_query_batches
from index_store.backends.errors import BackendError

# IndexIDMap2 keeps an id -> position hash map besides the id array; a libstdc++
# unordered_map node plus its bucket slot is about 40 bytes.
HASH_ENTRY_BYTES = 40


class FlatBackend:
    """Brute-force inner product over every live vector; removal via ``remove_ids``.

    >>> backend = FlatBackend(dim=4)
    >>> backend.add(np.array([7]), np.eye(4, dtype=np.float32)[:1])
    >>> backend.search(np.eye(4, dtype=np.float32)[:1], k=1)[1].tolist()
    [[7]]
    """

    name = "flat"
    exact = True

    def __init__(self, dim: int, index: faiss.IndexIDMap2 | None = None) -> None:
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._positions: np.ndarray | None = None  # id -> row in the flat array, -1 absent
        use_blas_for_query_batches()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (n, dim) under ``ids`` (n,)."""
        ids = as_ids(ids)
        first_row = len(self)
        self._index.add_with_ids(as_vectors(vectors, self.dim, len(ids)), ids)
        if self._positions is not None and ids.size:
            self._positions = grown(self._positions, int(ids.max()) + 1, -1)
            self._positions[ids] = np.arange(first_row, first_row + len(ids))

    def replace(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Overwrite the stored vectors of present ``ids`` in place: O(dim) each, where a
        removal would compact the whole array and rebuild the id hash map (about a second
        per call at 1M vectors)."""
        ids = as_ids(ids)
        rows = lookup(self._row_of(), ids)
        if (rows < 0).any():
            raise BackendError(f"replace: ids {ids[rows < 0][:5]} are not present")
        flat: Any = faiss.downcast_index(self._index.index)  # IndexFlatIP; stubs lack get_xb
        stored = faiss.rev_swig_ptr(flat.get_xb(), len(self) * self.dim)  # a view, no copy
        stored.reshape(len(self), self.dim)[rows] = as_vectors(vectors, self.dim, len(ids))

    def _row_of(self) -> np.ndarray:
        """id -> row array, rebuilt from the id list after removals compacted the rows."""
        if self._positions is None:
            ids = self.ids()
            self._positions = np.full(int(ids.max()) + 1 if ids.size else 0, -1, np.int64)
            self._positions[ids] = np.arange(len(ids))
        return self._positions

    def remove(self, ids: np.ndarray) -> None:
        """Remove ``ids``; unknown ones are ignored. O(n) per call (the flat array is compacted)."""
        ids = as_ids(ids)
        if ids.size:
            remove_by_id(self._index, ids)
            self._positions = None

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k; ``allowed`` (indexed by id) filters inside the scan."""
        queries = as_vectors(queries, self.dim)
        k = check_k(k)
        if allowed is None:
            scores, ids = self._index.search(queries, k)
            return finish(scores, ids)
        # IDMap translates positions to ids before asking the selector, so the bitmap is
        # indexed by id; ``bits`` must outlive the search (the selector holds a pointer).
        bits = bitmap(allowed)
        params = search_params("SearchParameters", bits)
        scores, ids = self._index.search(queries, k, params=params)
        return finish(scores, ids)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of ``ids`` (n,) as (n, dim) float32."""
        ids = as_ids(ids)
        if not ids.size:
            return np.empty((0, self.dim), dtype=np.float32)
        try:
            return np.asarray(self._index.reconstruct_batch(ids), dtype=np.float32)
        except RuntimeError as error:
            raise BackendError(f"reconstruct: some of ids {ids[:5]}... are not present") from error

    def ids(self) -> np.ndarray:
        """Every live id."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def memory_bytes(self) -> int:
        """Vectors (4 * dim each) plus the id array and its reverse hash map."""
        n = len(self)
        return n * (4 * self.dim + 8 + HASH_ENTRY_BYTES)

    def maintain(self) -> bool:
        """Nothing to maintain."""
        return False

    def save(self, path: Path) -> None:
        """``faiss.write_index`` to ``path``."""
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, dim: int) -> FlatBackend:
        """Read what :meth:`save` wrote, checking its dimension."""
        index = read_faiss(path, dim)
        if not isinstance(index, faiss.IndexIDMap2):
            raise BackendError(f"{path} holds a {type(index).__name__}, not a flat backend")
        return cls(dim, index)


def read_faiss(path: Path, dim: int) -> faiss.Index:
    """``faiss.read_index`` with clear errors for a missing file or a dimension mismatch."""
    if not Path(path).is_file():
        raise BackendError(f"no backend file at {path}")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as error:
        raise BackendError(f"{path} is not a readable FAISS index: {error}") from error
    if index.d != dim:
        raise BackendError(f"{path} holds {index.d}-d vectors but the index expects {dim}-d")
    return index
