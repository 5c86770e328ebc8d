"""Freshness of the index: how long events take to become visible, over a recent window, and
where that time goes: event → prompt (prompt processor), prompt → embedding (embedding
worker), embedding → visible (Kafka + the index feed)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from schemas import EmbeddingUpdate, Entity

Observer = Callable[[str, float], None]
StageObserver = Callable[[str, str, float], None]
"""``(entity, stage, seconds)``."""
STAGES = ("event_to_prompt", "prompt_to_embedding", "embedding_to_visible")


def stage_seconds(update: EmbeddingUpdate, now: float) -> dict[str, float]:
    """Seconds each pipeline stage took for ``update``, made visible at ``now`` (epoch s).

    From the timestamps the stages stamp on the record; a negative span (clocks of two
    machines disagreeing) counts as 0.
    """
    spans = (
        update.prompted_at_ms - update.event_time_ms,
        update.embedded_at_ms - update.prompted_at_ms,
        now * 1000 - update.embedded_at_ms,
    )
    return {stage: max(0.0, ms / 1000) for stage, ms in zip(STAGES, spans, strict=True)}


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
        self.stage_observers: list[StageObserver] = []

    def observe(self, entity: Entity, seconds: float) -> None:
        """Record that an event of ``entity`` became visible ``seconds`` after it happened."""
        with self._lock:
            self._samples[entity].append(seconds)
        for observer in self.observers:
            observer(entity, seconds)

    def observe_stages(self, entity: Entity, stages: dict[str, float]) -> None:
        """Record how long each stage took for one update that became visible."""
        for observer in self.stage_observers:
            for stage, seconds in stages.items():
                observer(entity, stage, seconds)

    def percentiles(self, entity: Entity, qs: tuple[float, ...] = (50, 99)) -> dict[str, float]:
        """``{"p50": ..., "p99": ..., "count": n}`` over the window (empty window: count 0)."""
        with self._lock:
            samples = np.array(self._samples[entity], dtype=np.float64)
        if samples.size == 0:
            return {"count": 0}
        values = np.percentile(samples, qs)
        named = {f"p{q:g}": float(v) for q, v in zip(qs, values, strict=True)}
        return {"count": int(samples.size), **named}
