"""Prometheus metrics of the pipeline roles (names from DESIGN.md "Observability").

Each role builds its metric objects on its own ``CollectorRegistry`` (no process globals), so
tests can run several roles in one process and read the numbers back.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class StreamMetrics:
    """Counters every consuming role keeps."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "feedline_events",
            "Records consumed, by topic and outcome (processed, dead_lettered, skipped).",
            ["topic", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "feedline_dlq_messages",
            "Records sent to a dead-letter topic, by reason.",
            ["topic", "reason"],
            registry=registry,
        )


class PromptMetrics(StreamMetrics):
    """The prompt processor's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.offset_verdicts = Counter(
            "feedline_offset_verdicts",
            "Delivered records not processed as they came, by topic and verdict: skipped "
            "(below the next expected offset: processed already, or fetched before a seek) "
            "and seek (above it: the partition was sought back to fetch what was not "
            "delivered); stalled counts partitions fetched again after delivering nothing "
            "for STALL_S while they had records to read.",
            ["topic", "verdict"],
            registry=registry,
        )
        self.commits = Counter(
            "feedline_offset_commits",
            "Offset commits by outcome (committed; rebalanced: the group moved on, the new "
            "owner redoes the records).",
            ["outcome"],
            registry=registry,
        )
        self.reembeds = Counter(
            "feedline_reembed_decisions",
            "Re-embedding decisions by entity, decision (triggered, suppressed) and reason.",
            ["entity", "decision", "reason"],
            registry=registry,
        )
        self.prompts = Counter(
            "feedline_prompts",
            "Prompt requests published, by entity and operation.",
            ["entity", "op"],
            registry=registry,
        )


class EmbedMetrics(StreamMetrics):
    """The embedding worker's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.batch_size = Histogram(
            "feedline_embed_batch_size",
            "Prompts embedded per poll (after dropping superseded versions).",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "feedline_embed_tokens", "Prompt tokens embedded (after truncation).", registry=registry
        )
        self.batch_duration = Histogram(
            "feedline_embed_batch_duration_seconds",
            "Model time per poll batch.",
            registry=registry,
        )
        self.superseded = Counter(
            "feedline_embed_superseded",
            "Prompt requests skipped because a newer version of "
            "the same entity was in the same batch.",
            ["entity"],
            registry=registry,
        )
        self.updates = Counter(
            "feedline_embed_updates",
            "Embedding updates published, by entity and operation.",
            ["entity", "op"],
            registry=registry,
        )
        self.transactions = Counter(
            "feedline_embed_transactions",
            "Per-partition transactions (a batch's outputs and its offset) by outcome: "
            "committed; fenced (a newer owner took the partition: nothing visible); failed "
            "(aborted on a broker error, the batch is redone).",
            ["outcome"],
            registry=registry,
        )


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
    """Progress of model rollouts (``streams.rollout``); gauges describe the current or last
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


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Expose ``registry`` at ``http://host:port/metrics`` from a daemon thread."""
    start_http_server(port, addr=host, registry=registry)
