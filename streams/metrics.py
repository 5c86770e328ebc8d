"""Prometheus metrics of the pipeline roles (names from DESIGN.md "Observability").

Each role builds its metric objects on its own ``CollectorRegistry`` (no process globals), so
tests can run several roles in one process and read the numbers back.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

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


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Expose ``registry`` at ``http://host:port/metrics`` from a daemon thread."""
    start_http_server(port, addr=host, registry=registry)
