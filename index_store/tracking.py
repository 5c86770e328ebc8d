"""Freshness of the index: how long events take to become visible, over a recent window."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from schemas import Entity

Observer = Callable[[str, float], None]


class FreshnessWindow:
    """The last ``size`` freshness observations per entity, for percentiles on demand.

    Prometheus gets the same observations as a histogram; this window gives exact recent
    percentiles for ``/v1/stats`` and the demo.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._samples: dict[str, deque[float]] = {
            "post": deque(maxlen=size),
            "member": deque(maxlen=size),
        }
        self._lock = threading.Lock()
        self.observers: list[Observer] = []

    def observe(self, entity: Entity, seconds: float) -> None:
        """Record that an event of ``entity`` became visible ``seconds`` after it happened."""
        with self._lock:
            self._samples[entity].append(seconds)
        for observer in self.observers:
            observer(entity, seconds)

    def percentiles(self, entity: Entity, qs: tuple[float, ...] = (50, 99)) -> dict[str, float]:
        """``{"p50": ..., "p99": ..., "count": n}`` over the window (empty window: count 0)."""
        with self._lock:
            samples = np.array(self._samples[entity], dtype=np.float64)
        if samples.size == 0:
            return {"count": 0}
        values = np.percentile(samples, qs)
        named = {f"p{q:g}": float(v) for q, v in zip(qs, values, strict=True)}
        return {"count": int(samples.size), **named}
