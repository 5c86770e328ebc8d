"""Metrics of the serve role's feeds: the index feed's snapshots, restores, rebuilds and
re-embeddings (``IndexMetrics``, which ``ServiceMetrics`` extends) and model rollouts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.metrics import StreamMetrics


class IndexMetrics(StreamMetrics):
    """The index feed's metrics: snapshots, restores, rebuilds."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.snapshots = Counter(
            "feedline_index_snapshots",
            "Index snapshots attempted, by outcome (written, failed).",
            ["outcome"],
            registry=registry,
        )
        self.snapshot_duration = Histogram(
            "feedline_index_snapshot_duration_seconds",
            "Time to capture and write one index snapshot.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
            registry=registry,
        )
        self.snapshot_age = Gauge(
            "feedline_index_snapshot_age_seconds",
            "Seconds since the newest snapshot was written (since start if none yet).",
            registry=registry,
        )
        self.rebuilds = Counter(
            "feedline_index_rebuilds",
            "Starts that rebuilt the index by replaying its topics instead of restoring a "
            "snapshot, by reason (no_snapshot, model_version_changed, "
            "offsets_out_of_retention, offsets_past_end).",
            ["reason"],
            registry=registry,
        )
        self.start_duration = Gauge(
            "feedline_index_start_seconds",
            "Seconds the last start took to load its snapshot (0 when it replayed).",
            registry=registry,
        )
        self.reembedded = Counter(
            "feedline_index_reembedded_updates",
            "Updates of another model version re-embedded from their prompt text before they "
            "were applied (after a model rollout, until the embedding workers run the new "
            "model), by entity.",
            ["entity"],
            registry=registry,
        )


ROLLOUT_STATES = ("building", "catching_up", "switched", "failed")


class RolloutMetrics:
    """Progress of model rollouts (``service.feeds.rollout``); gauges describe the current or last
    rollout and are reset when a new one starts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.entities = Gauge(
            "feedline_rollout_entities",
            "Entities of the current (or last) rollout by entity and state: target (to embed "
            "with the new model), embedded, skipped_no_text (newest update has no prompt "
            "text), deleted (tombstoned posts carried over).",
            ["entity", "state"],
            registry=registry,
        )
        self.state = Gauge(
            "feedline_rollout_state",
            "1 for the state a rollout to model_version is in (building, catching_up, "
            "switched, failed), 0 for the others.",
            ["model_version", "state"],
            registry=registry,
        )
        self.duration = Gauge(
            "feedline_rollout_duration_seconds",
            "Seconds the current (or last) rollout has run, from its start to the switch or "
            "the failure.",
            registry=registry,
        )
        self.records = Counter(
            "feedline_rollout_records",
            "Records of the embeddings topics read by rollouts, by phase (building, catching_up).",
            ["phase"],
            registry=registry,
        )
        self.outcomes = Counter(
            "feedline_rollouts",
            "Rollouts finished, by outcome (switched, failed).",
            ["outcome"],
            registry=registry,
        )
