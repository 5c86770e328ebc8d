"""Exact inner-product kNN over post vectors with string ids and pre-filtering.

FAISS ``IndexIDMap2`` over ``IndexFlatIP``: exact search, removal by id. Vectors are unit
length, so inner product is cosine similarity. String post ids map to int64 FAISS ids that are
never reused. Filters are FAISS ID selectors applied inside the scan, before top-k, so ``k``
results come back whenever ``k`` eligible posts exist.

Not thread-safe on its own: ``IndexStore`` serialises access.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import faiss
import numpy as np


class Hit(NamedTuple):
    """One search result."""

    post_id: str
    score: float
    """Cosine similarity to the query, in [-1, 1]."""


class PostIndex:
    """FAISS index of post vectors keyed by string post id."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._int_ids: dict[str, int] = {}
        self._str_ids: dict[int, str] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __contains__(self, post_id: object) -> bool:
        return post_id in self._int_ids

    def upsert(self, post_id: str, vector: np.ndarray) -> None:
        """Insert or replace the vector of ``post_id`` (shape ``(dim,)``)."""
        if post_id in self._int_ids:
            self.remove(post_id)
        int_id = self._next_id
        self._next_id += 1
        self._int_ids[post_id] = int_id
        self._str_ids[int_id] = post_id
        row = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        self._index.add_with_ids(row, np.array([int_id], dtype=np.int64))

    def remove(self, post_id: str) -> bool:
        """Drop ``post_id``; False if it was not indexed."""
        int_id = self._int_ids.pop(post_id, None)
        if int_id is None:
            return False
        del self._str_ids[int_id]
        self._index.remove_ids(faiss.IDSelectorBatch(np.array([int_id], dtype=np.int64)))
        return True

    def search(self, query: np.ndarray, k: int, exclude: Iterable[str] = ()) -> list[Hit]:
        """The ``k`` posts most similar to ``query`` (shape ``(dim,)``), best first.

        ``exclude`` lists post ids that must not be returned (filtered before top-k).
        """
        excluded = np.unique(
            np.array([self._int_ids[p] for p in exclude if p in self._int_ids], dtype=np.int64)
        )
        k = min(k, len(self) - len(excluded))
        if k <= 0:
            return []
        params = None
        if len(excluded):
            batch = faiss.IDSelectorBatch(excluded)  # a local, so it outlives the search
            params = faiss.SearchParameters(sel=faiss.IDSelectorNot(batch))  # type: ignore[call-arg]
        row = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        scores, ids = self._index.search(row, k, params=params)  # (1, k), (1, k)
        return [
            Hit(self._str_ids[int(i)], float(s))
            for s, i in zip(scores[0], ids[0], strict=True)
            if i >= 0
        ]
