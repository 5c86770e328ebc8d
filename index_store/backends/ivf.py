"""Approximate kNN with FAISS ``IndexIVFFlat``; exact (flat) until it has enough to train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_store.backends._arrays import as_ids, as_vectors, bitmap, check_k, finish
from index_store.backends._faiss import remove_by_id, search_params, use_hashtable_direct_map
from index_store.backends.errors import BackendError
from index_store.backends.flat import HASH_ENTRY_BYTES, FlatBackend, read_faiss

# k-means gains nothing past ~256 points per centroid (FAISS caps its own sample there too).
MAX_TRAIN_PER_LIST = 256
ADD_CHUNK = 65_536


class IvfBackend:
    """Inverted lists over ``nlist`` k-means cells; a query scans the ``nprobe`` nearest cells.

    Ids live in the lists (``add_with_ids``) and a hashtable direct map finds them again, so
    ``remove`` and ``reconstruct`` work by id. Until ``train_min`` vectors have arrived they are
    held in a :class:`FlatBackend` (exact); the ``add`` that reaches the threshold trains on them
    and moves them into the lists (k-means over at most ``train_sample`` of them, seeded).
    ``nprobe`` may be changed between searches.
    """

    name = "ivf"
    exact = False

    def __init__(
        self,
        dim: int,
        nlist: int = 1024,
        nprobe: int = 32,
        train_min: int | None = None,
        train_sample: int | None = None,
    ) -> None:
        self.dim = dim
        self.nlist = nlist
        self.nprobe = nprobe
        # k-means needs at least one point per centroid.
        self.train_min = max(train_min if train_min is not None else 39 * nlist, nlist)
        # k-means cost grows with its sample; past ~256 points a centroid it gains nothing.
        self.train_sample = max(train_sample or MAX_TRAIN_PER_LIST * nlist, nlist)
        self._flat: FlatBackend | None = FlatBackend(dim)
        self._ivf: faiss.IndexIVFFlat | None = None

    @property
    def _lists(self) -> faiss.IndexIVFFlat:
        """The trained IVF index (only called once trained)."""
        if self._ivf is None:
            raise BackendError("the IVF backend is not trained yet")
        return self._ivf

    @property
    def trained(self) -> bool:
        """Whether the vectors are in the inverted lists (else in the exact holding area)."""
        return self._ivf is not None

    def __len__(self) -> int:
        return len(self._flat) if self._flat is not None else int(self._lists.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (n, dim) under ``ids`` (n,); trains once ``train_min`` is reached."""
        ids = as_ids(ids)
        vectors = as_vectors(vectors, self.dim, len(ids))
        if self._flat is not None:
            self._flat.add(ids, vectors)
            self.maintain()
        else:
            self._lists.add_with_ids(vectors, ids)

    def replace(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """New vectors for present ``ids``: removal, then insertion."""
        self.remove(ids)
        self.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> None:
        """Remove ``ids``; unknown ones are ignored."""
        ids = as_ids(ids)
        if self._flat is not None:
            self._flat.remove(ids)
        elif ids.size:
            remove_by_id(self._lists, ids)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over the ``nprobe`` nearest lists; ``allowed`` filters inside the list scan."""
        if self._flat is not None:
            return self._flat.search(queries, k, allowed)
        queries = as_vectors(queries, self.dim)
        bits = None if allowed is None else bitmap(allowed)  # must outlive the search
        params = search_params("SearchParametersIVF", bits, nprobe=min(self.nprobe, self.nlist))
        scores, ids = self._lists.search(queries, check_k(k), params=params)
        return finish(scores, ids)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of ``ids`` (n,) as (n, dim) float32."""
        if self._flat is not None:
            return self._flat.reconstruct(ids)
        ids = as_ids(ids)
        if not ids.size:
            return np.empty((0, self.dim), dtype=np.float32)
        try:
            return np.asarray(self._lists.reconstruct_batch(ids), dtype=np.float32)
        except RuntimeError as error:
            raise BackendError(f"reconstruct: some of ids {ids[:5]}... are not present") from error

    def ids(self) -> np.ndarray:
        """Every live id, gathered from the inverted lists."""
        if self._flat is not None:
            return self._flat.ids()
        lists: Any = self._lists.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(self.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def memory_bytes(self) -> int:
        """List entries (vector + id), the id hashtable, and the centroids."""
        if self._flat is not None:
            return self._flat.memory_bytes()
        n = len(self)
        return n * (4 * self.dim + 8 + HASH_ENTRY_BYTES) + 4 * self.dim * self.nlist

    def maintain(self) -> bool:
        """Train and move the held vectors into the lists once ``train_min`` have arrived."""
        if self._flat is None or len(self._flat) < self.train_min:
            return False
        ids = self._flat.ids()
        vectors = self._flat.reconstruct(ids)  # (n, dim)
        index = self._trained_index(vectors)
        for start in range(0, len(ids), ADD_CHUNK):
            stop = start + ADD_CHUNK
            index.add_with_ids(vectors[start:stop], ids[start:stop])
        self._ivf = index
        self._flat = None
        return True

    def _trained_index(self, vectors: np.ndarray) -> faiss.IndexIVFFlat:
        """An empty IVF whose centroids are k-means over (a seeded sample of) ``vectors``."""
        limit = self.train_sample
        if len(vectors) > limit:
            rows = np.random.default_rng(0).choice(len(vectors), limit, replace=False)
            vectors = vectors[np.sort(rows)]
        quantizer = faiss.IndexFlatIP(self.dim)  # faiss's wrapper keeps it alive with the index
        index = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        use_hashtable_direct_map(index)
        index.train(vectors)
        return index

    def save(self, path: Path) -> None:
        """``faiss.write_index``: the IVF (direct map included), or the flat holding area."""
        if self._flat is not None:
            self._flat.save(path)
        else:
            faiss.write_index(self._lists, str(path))

    @classmethod
    def load(
        cls, path: Path, dim: int, nlist: int, nprobe: int, train_min: int | None = None
    ) -> IvfBackend:
        """Read what :meth:`save` wrote; a saved IVF keeps its own ``nlist``."""
        index = read_faiss(path, dim)
        if isinstance(index, faiss.IndexIDMap2):
            backend = cls(dim, nlist, nprobe, train_min)
            backend._flat = FlatBackend(dim, index)
            return backend
        if not isinstance(index, faiss.IndexIVFFlat):
            raise BackendError(f"{path} holds a {type(index).__name__}, not an IVF backend")
        backend = cls(dim, int(index.nlist), nprobe, train_min)
        backend._flat, backend._ivf = None, index
        return backend
