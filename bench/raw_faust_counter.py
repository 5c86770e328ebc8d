"""The baseline of ``bench.prompt_throughput``: a raw Faust app with one agent that reads the
``engagements`` topic and counts engagements per member into one table, nothing else.

Everything but the logic is the prompt processor's: the same faust-streaming version, feedline's
transport (``streams.faust_transport``: idempotent ``acks=all`` producer, patient bootstrap,
explicit-commit consumer), the same app settings read from ``PromptWorkerSettings`` (table
store, data directory, session timeout, producer linger, event loop, standby replicas,
partitions, replication), a table with its changelog on, and commits every
``commit_interval_s``. What it leaves out: the decode into pydantic models, post and member
state, sketches, prompts, the repartition to ``engagements.by-member`` and the
``PromptCommitter`` ledger; faust commits from its own acknowledgements (the topic keeps
faust's default ``acks=True``).

    FEEDLINE_KAFKA_BOOTSTRAP_SERVERS=... FEEDLINE_PROMPTS_APP_ID=raw-counter \\
        python -m bench.raw_faust_counter
"""

from __future__ import annotations

import json

import faust

from streams.faust_transport import use_event_loop, use_feedline_transport
from streams.prompt_settings import PromptWorkerSettings
from streams.settings import KafkaSettings
from streams.topics import ENGAGEMENTS, ensure_changelog_topics

TABLE = "engagement_counts"


def build_counter_app(kafka: KafkaSettings, settings: PromptWorkerSettings) -> faust.App:
    """One agent, one table: ``member_id -> engagements seen``."""
    app = faust.App(
        kafka.topic(settings.app_id),
        broker=kafka.faust_broker_url(),
        store=f"{settings.store}://",
        datadir=str(settings.data_dir),
        table_standby_replicas=settings.standby_replicas,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger_s,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        web_enabled=False,
    )
    use_feedline_transport(app, kafka.backoff())
    counts = app.Table(TABLE, default=int, partitions=kafka.partitions)
    engagements = app.topic(
        kafka.topic(ENGAGEMENTS.name),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(engagements, name="count", concurrency=1)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            counts[json.loads(value)["member_id"]] += 1

    return app


def main() -> None:
    """Run the counter until SIGTERM."""
    kafka, settings = KafkaSettings(), PromptWorkerSettings()
    use_event_loop(settings.event_loop)
    ensure_changelog_topics(kafka, kafka.topic(settings.app_id), [TABLE])
    app = build_counter_app(kafka, settings)
    faust.Worker(
        app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
