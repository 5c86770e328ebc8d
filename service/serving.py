"""What queries are answered with: the index, the query encoder and the ranker, as one value.

A model rollout replaces all three at once (``ServingSlot.swap``). A request reads
``slot.current`` once and uses only that value, so it never embeds a text query with one model
and searches the index of another, or ranks with a GR trained on other embeddings.

Example::

    slot = ServingSlot(ServingModel(store, encoder, ranker))
    serving = slot.current                 # once per request
    hits = serving.store.search(serving.encoder.encode([text])[0], k=10)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index_store import IndexStore
from service.ranker import Ranker


class QueryEncoder(Protocol):
    """Embeds query texts: ``TextEncoder`` or anything with the same surface."""

    model_version: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 rows of unit length."""
        ...


@dataclass(frozen=True)
class ServingModel:
    """An index with the encoder that embedded it and the ranker that scores its vectors."""

    store: IndexStore
    encoder: QueryEncoder
    ranker: Ranker

    def __post_init__(self) -> None:
        if self.encoder.model_version != self.store.model_version:
            raise ValueError(
                f"the encoder embeds with {self.encoder.model_version!r}, the index holds "
                f"{self.store.model_version!r}"
            )
        if self.encoder.dim != self.store.dim:
            raise ValueError(f"encoder dim {self.encoder.dim} != index dim {self.store.dim}")
        if self.ranker.store is not self.store:
            raise ValueError("the ranker reads another index than the one served")

    @property
    def model_version(self) -> str:
        """The embedding model of every vector this value serves."""
        return self.store.model_version


class ServingSlot:
    """Holds the current ``ServingModel``; reading it is one reference load, so a swap is
    atomic for every reader."""

    def __init__(self, initial: ServingModel) -> None:
        self._current = initial
        self._lock = threading.Lock()
        self.swaps = 0

    @property
    def current(self) -> ServingModel:
        """The value to answer one request with (read it once per request)."""
        return self._current

    def swap(self, new: ServingModel) -> ServingModel:
        """Serve ``new`` from now on; returns the value it replaced."""
        with self._lock:
            old, self._current = self._current, new
            self.swaps += 1
        return old
