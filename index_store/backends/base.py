"""The interface every kNN backend implements.

A backend holds unit-length float32 vectors under int64 ids (the store's persistent ids; an
id is never reused for another post) and answers inner-product top-k, optionally restricted to
an ``allowed`` boolean mask indexed by id. Filtering happens inside the search, before top-k.

Backends are not thread-safe; the store serialises calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class VectorBackend(Protocol):
    """kNN over (id, vector) pairs with removal and pre-filtering."""

    name: str
    """``flat``, ``ivf``, ``hnsw`` or ``torch``."""
    dim: int
    exact: bool
    """True when a search always returns the true top-k among allowed ids."""

    def __len__(self) -> int:
        """Live vectors held."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (n, dim) float32 under ``ids`` (n,) int64, none of them present."""
        ...

    def replace(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Give ``ids`` (n,), all present, new ``vectors`` (n, dim) (re-embeddings)."""
        ...

    def remove(self, ids: np.ndarray) -> None:
        """Remove ``ids`` (n,) int64; ids not present are ignored."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product for ``queries`` (B, dim).

        ``allowed`` is a bool mask indexed by id; ids at or past its end are not allowed.
        Returns ``(scores, ids)``, both (B, k), best first, padded with ``-inf`` / ``-1``.
        """
        ...

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (n,), as float32 (n, dim); every id must be present."""
        ...

    def ids(self) -> np.ndarray:
        """Every live id, int64 (n,), in no particular order."""
        ...

    def memory_bytes(self) -> int:
        """Bytes the backend holds for its vectors and structures (approximate)."""
        ...

    def maintain(self) -> bool:
        """Periodic upkeep (train IVF once enough vectors arrived, rebuild HNSW past its
        tombstone threshold). Returns True if it changed the structure."""
        ...

    def save(self, path: Path) -> None:
        """Write the backend's native form to ``path`` (one file) for a fast restore."""
        ...
