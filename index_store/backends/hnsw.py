"""Approximate kNN with FAISS ``IndexHNSWFlat``; removal by tombstones, rebuilt in ``maintain``."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_store.backends._arrays import (
    allowed_lookup,
    as_ids,
    as_vectors,
    bitmap,
    check_k,
    finish,
    grown,
    lookup,
)
from index_store.backends._faiss import search_params
from index_store.backends.errors import BackendError

FORMAT = "feedline-hnsw-v1"
ADD_CHUNK = 65_536
# Largest efSearch a filter may raise a search to (beyond it, exact subset search is cheaper).
MAX_FILTERED_EF = 4_096


class HnswBackend:
    """A navigable small-world graph over every vector ever added since the last rebuild.

    FAISS numbers HNSW nodes 0, 1, 2, ... (labels) and cannot delete them, so this keeps
    ``label -> id`` and ``id -> label`` arrays (-1 = tombstone / absent) and searches with a
    bitmap over labels (live, and allowed by the filter). Tombstoned nodes still route the
    graph walk; ``maintain`` rebuilds from the live vectors once tombstones reach
    ``rebuild_fraction`` of the nodes (it costs a full build and blocks meanwhile).
    ``ef_search`` may be changed between searches.
    """

    name = "hnsw"
    exact = False

    def __init__(
        self,
        dim: int,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 96,
        rebuild_fraction: float = 0.2,
    ) -> None:
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.rebuild_fraction = rebuild_fraction
        self._reset()

    def _reset(self) -> None:
        self._index = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = self.ef_construction
        self._label_to_id = np.full(0, -1, dtype=np.int64)  # (capacity,), valid to ntotal
        self._id_to_label = np.full(0, -1, dtype=np.int64)  # (max id + 1 rounded up,)
        self._live = 0
        self._live_bits: np.ndarray | None = None  # cached bitmap of live labels

    @property
    def nodes(self) -> int:
        """Graph nodes, tombstones included."""
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self._live

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert ``vectors`` (n, dim) as new nodes labelled ``nodes, nodes + 1, ...``."""
        ids = as_ids(ids)
        vectors = as_vectors(vectors, self.dim, len(ids))
        if not ids.size:
            return
        first = self.nodes
        labels = np.arange(first, first + len(ids), dtype=np.int64)
        self._label_to_id = grown(self._label_to_id, first + len(ids), -1)
        self._id_to_label = grown(self._id_to_label, int(ids.max()) + 1, -1)
        for start in range(0, len(ids), ADD_CHUNK):
            self._index.add(vectors[start : start + ADD_CHUNK])
        self._label_to_id[labels] = ids
        self._id_to_label[ids] = labels
        self._live += len(ids)
        self._live_bits = None

    def replace(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """New vectors for present ``ids``: removal, then insertion."""
        self.remove(ids)
        self.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> None:
        """Tombstone ``ids``; unknown ones are ignored."""
        labels = self._labels_of(as_ids(ids))
        labels = np.unique(labels[labels >= 0])
        if not labels.size:
            return
        self._id_to_label[self._label_to_id[labels]] = -1
        self._label_to_id[labels] = -1
        self._live -= len(labels)
        self._live_bits = None

    def _labels_of(self, ids: np.ndarray) -> np.ndarray:
        """Label of each id, -1 where absent."""
        return lookup(self._id_to_label, ids)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Graph search; filtered-out nodes and tombstones still route but are not returned.

        ``efSearch`` is ``max(ef_search, k)``, raised to ``k / share`` (capped at
        ``MAX_FILTERED_EF``) when only a ``share`` of the nodes may be returned, so that the
        walk meets about k eligible nodes. A very selective filter can still leave fewer than
        k results: the store answers those with :func:`exact_subset_search`.
        """
        queries = as_vectors(queries, self.dim)
        k = check_k(k)
        eligible = self._eligible_labels(allowed)  # (nodes,) bool, or None: all
        bits = None if eligible is None else self._bits(eligible, allowed)  # outlives search
        ef = max(self.ef_search, k)
        if eligible is not None:
            share = max(int(eligible.sum()), 1) / max(self.nodes, 1)
            ef = max(ef, min(math.ceil(k / share), MAX_FILTERED_EF))
        params = search_params("SearchParametersHNSW", bits, efSearch=ef)
        scores, labels = self._index.search(queries, k, params=params)
        ids = np.where(labels >= 0, self._label_to_id[np.maximum(labels, 0)], -1)
        return finish(scores, ids)

    def _eligible_labels(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """Which labels may be returned (live, and allowed); None when every node may."""
        if allowed is None:
            return None if self._live == self.nodes else self._label_to_id[: self.nodes] >= 0
        # Tombstones have id -1, which allowed_lookup treats as not allowed.
        return allowed_lookup(allowed, self._label_to_id[: self.nodes])

    def _bits(self, eligible: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
        """Selector bitmap of ``eligible``; the unfiltered (live-only) one is cached."""
        if allowed is not None:
            return bitmap(eligible)
        if self._live_bits is None:
            self._live_bits = bitmap(eligible)
        return self._live_bits

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of ``ids`` (n,) as (n, dim) float32."""
        ids = as_ids(ids)
        labels = self._labels_of(ids)
        if (labels < 0).any():
            raise BackendError(f"reconstruct: ids {ids[labels < 0][:5]} are not present")
        return self._vectors()[labels]

    def _vectors(self) -> np.ndarray:
        """Zero-copy (nodes, dim) view of the flat storage under the graph."""
        storage: Any = faiss.downcast_index(self._index.storage)  # IndexFlat
        flat = faiss.rev_swig_ptr(storage.get_xb(), self.nodes * self.dim)
        return np.asarray(flat, dtype=np.float32).reshape(self.nodes, self.dim)

    def ids(self) -> np.ndarray:
        """Every live id."""
        label_ids = self._label_to_id[: self.nodes]
        return label_ids[label_ids >= 0].copy()

    def memory_bytes(self) -> int:
        """Vectors, neighbour lists (int32 each), per-node levels/offsets, and the id arrays."""
        graph: Any = self._index.hnsw  # stubs lack the ``neighbors`` vector
        per_node = 4 * self.dim + 4 + 8  # vector, level, neighbour offset
        return (
            self.nodes * per_node
            + 4 * int(graph.neighbors.size())
            + self._label_to_id.nbytes
            + self._id_to_label.nbytes
        )

    def maintain(self) -> bool:
        """Rebuild the graph from live vectors once tombstones reach ``rebuild_fraction``."""
        tombstones = self.nodes - self._live
        if tombstones == 0 or tombstones < self.rebuild_fraction * self.nodes:
            return False
        live_ids = self.ids()
        vectors = self.reconstruct(live_ids)  # (live, dim) copy; the old graph goes next
        self._reset()
        self.add(live_ids, vectors)
        return True

    def save(self, path: Path) -> None:
        """One ``.npz``: the serialized FAISS index and the label -> id array."""
        with open(path, "wb") as out:
            np.savez(
                out,
                format=np.array(FORMAT),
                index=faiss.serialize_index(self._index),
                label_to_id=self._label_to_id[: self.nodes],
            )

    @classmethod
    def load(
        cls, path: Path, dim: int, ef_search: int = 96, rebuild_fraction: float = 0.2
    ) -> HnswBackend:
        """Read what :meth:`save` wrote; ``M`` and ``efConstruction`` come from the file."""
        arrays = read_npz(path)
        index = faiss.deserialize_index(arrays["index"])
        if not isinstance(index, faiss.IndexHNSWFlat):
            raise BackendError(f"{path} holds a {type(index).__name__}, not an HNSW index")
        if index.d != dim:
            raise BackendError(f"{path} holds {index.d}-d vectors but the index expects {dim}-d")
        graph: Any = index.hnsw
        m = int(graph.nb_neighbors(1))  # level >= 1 keeps M links (level 0 keeps 2M)
        ef_construction = int(graph.efConstruction)
        backend = cls(dim, m, ef_construction, ef_search, rebuild_fraction)
        label_to_id = arrays["label_to_id"].astype(np.int64)
        backend._index = index
        backend._label_to_id = label_to_id
        live = label_to_id >= 0
        top = int(label_to_id.max()) + 1 if live.any() else 0
        backend._id_to_label = np.full(top, -1, dtype=np.int64)
        backend._id_to_label[label_to_id[live]] = np.flatnonzero(live)
        backend._live = int(live.sum())
        return backend


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a backend ``.npz``, checking the format tag."""
    if not Path(path).is_file():
        raise BackendError(f"no backend file at {path}")
    try:
        with np.load(io.BytesIO(Path(path).read_bytes()), allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise BackendError(f"{path} is not a readable HNSW backend file: {error}") from error
    if str(arrays.get("format")) != FORMAT:
        raise BackendError(f"{path} is not an HNSW backend file (format {arrays.get('format')})")
    return arrays
