"""The query service's metrics: index size and freshness, query latency, feed outcomes,
model rollouts."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram

from index_store import IndexStore
from service.feeds.feed_metrics import IndexMetrics, RolloutMetrics

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FRESHNESS_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, *FRESHNESS_BUCKETS)


class ServiceMetrics(IndexMetrics):
    """Everything ``GET /metrics`` of the query service exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.query_duration = Histogram(
            "feedline_query_duration_seconds",
            "Query latency by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.freshness = Histogram(
            "feedline_freshness_seconds",
            "Time from the event that caused an update (creation, edit, engagement, profile "
            "change) to visible in the index, by entity (live updates; not the start-up "
            "replay).",
            ["entity"],
            buckets=FRESHNESS_BUCKETS,
            registry=registry,
        )
        self.stage_freshness = Histogram(
            "feedline_freshness_stage_seconds",
            "Time spent in each pipeline stage by updates that became visible, by entity: "
            "event_to_prompt, prompt_to_embedding, embedding_to_visible.",
            ["stage", "entity"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.index_vectors = Gauge(
            "feedline_index_vectors", "Vectors held, by entity.", ["entity"], registry=registry
        )
        self.ready = Gauge(
            "feedline_index_ready",
            "1 once the index caught up with its input topics.",
            registry=registry,
        )
        self.rollout = RolloutMetrics(registry)

    def bind(self, serving_store: Callable[[], IndexStore], is_ready: Callable[[], bool]) -> None:
        """Read index size and readiness at scrape time from the store that serves then."""
        self.index_vectors.labels("post").set_function(lambda: serving_store().counts()["posts"])
        self.index_vectors.labels("member").set_function(
            lambda: serving_store().counts()["members"]
        )
        self.ready.set_function(lambda: 1.0 if is_ready() else 0.0)
        self.observe_freshness(serving_store())

    def observe_freshness(self, store: IndexStore) -> None:
        """Export the freshness of updates applied to ``store`` (call for each new store
        before it starts receiving updates, e.g. a rollout's shadow)."""
        store.freshness.observers.append(
            lambda entity, seconds: self.freshness.labels(entity).observe(seconds)
        )
        store.freshness.stage_observers.append(
            lambda entity, stage, seconds: self.stage_freshness.labels(stage, entity).observe(
                seconds
            )
        )
