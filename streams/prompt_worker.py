"""The prompt processor role: a Faust app with one agent per side (see ``prompt_handlers``).

Partition/offset/commit behaviour: each agent runs with concurrency 1, so records of a
partition are handled strictly in order. Faust acknowledges a record once the agent has moved
past it, and before committing offsets it flushes the producer (prompts, repartitioned
engagements, dead letters, ticks and table changelogs), so a committed offset always has its
effects in Kafka: at-least-once. Duplicates after a crash carry the same versions and are
idempotent downstream. Table state (post features and counts, percentile sketches, member
profiles, histories and negatives) is recovered from the changelog topics on restart.
A timer sends a tick to every partition of ``engagements.by-member`` this worker owns, so
debounced member changes are published even when no further event arrives.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from models.encoder import load_tokenizer
from models.settings import EncoderSettings
from processors.feature_sketches import PartitionSketches
from processors.prompts import PromptLibrary
from processors.token_budget import TokenMeter
from streams.metrics import PromptMetrics, serve_metrics
from streams.prompt_handlers import PromptHandlers, PromptTables
from streams.prompt_settings import PromptWorkerSettings
from streams.records import Incoming, Outgoing, normalise_headers
from streams.settings import KafkaSettings
from streams.topics import (
    ENGAGEMENTS,
    ENGAGEMENTS_BY_MEMBER,
    MEMBERS_PROFILE,
    POSTS_CREATED,
    POSTS_DELETED,
    ensure_changelog_topics,
    ensure_topics,
)

log = logging.getLogger(__name__)
RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}
TABLES = (
    "posts",
    "post_counts",
    "sketches",
    "members",
    "member_history",
    "member_negatives",
    "member_pending",
)


def build_prompt_app(
    kafka: KafkaSettings, settings: PromptWorkerSettings, handlers: PromptHandlers
) -> faust.App:
    """A Faust app wired to the catalog topics; ``run_prompt_worker`` runs it."""
    app = faust.App(
        kafka.topic(settings.app_id),
        broker=kafka.faust_broker_url(),
        broker_credentials=_credentials(kafka),
        store="memory://",
        datadir=str(settings.data_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
    )
    tables = PromptTables(**{n: app.Table(n, partitions=kafka.partitions) for n in TABLES})
    by_member = kafka.topic(ENGAGEMENTS_BY_MEMBER.name)
    post_side = app.topic(
        *(kafka.topic(s.name) for s in (POSTS_CREATED, POSTS_DELETED, ENGAGEMENTS)), **RAW
    )
    member_side = app.topic(kafka.topic(MEMBERS_PROFILE.name), by_member, **RAW)
    sinks: dict[str, faust.types.TopicT] = {}

    async def publish(records: list[Outgoing]) -> None:
        for out in records:
            if out.topic not in sinks:
                sinks[out.topic] = app.topic(out.topic, **RAW)
            await sinks[out.topic].send(
                key=out.key, value=out.value, headers=out.headers, partition=out.partition
            )

    @app.agent(post_side, name="post-side", concurrency=1)
    async def post_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await publish(handlers.on_post_side(_incoming(event), tables))

    @app.agent(member_side, name="member-side", concurrency=1)
    async def member_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await publish(handlers.on_member_side(_incoming(event), tables))

    @app.timer(interval=settings.tick_interval_s)
    async def tick() -> None:
        owned = [tp.partition for tp in app.assignor.assigned_actives() if tp.topic == by_member]
        await publish([handlers.tick(partition) for partition in owned])

    return app


def run_prompt_worker(
    kafka: KafkaSettings, settings: PromptWorkerSettings, encoder: EncoderSettings
) -> None:
    """Create missing topics, expose metrics, and run the worker until SIGTERM/SIGINT."""
    ensure_topics(kafka)
    ensure_changelog_topics(kafka, kafka.topic(settings.app_id), TABLES)
    metrics = PromptMetrics(CollectorRegistry())
    if settings.metrics_port:
        serve_metrics(metrics.registry, settings.metrics_port, settings.metrics_host)
    tokenizer, _ = load_tokenizer(encoder)
    config = settings.prompt_config()
    handlers = PromptHandlers(
        kafka,
        metrics,
        PromptLibrary(config, TokenMeter(tokenizer)),
        settings.reembed_policy(),
        PartitionSketches(config.sketch_k, settings.sketch_refresh_every),
    )
    app = build_prompt_app(kafka, settings, handlers)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def _incoming(event: faust.types.EventT) -> Incoming:
    message = event.message
    return Incoming(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        normalise_headers(message.headers),
    )


def _credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    if kafka.sasl_mechanism:
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password_value(),
            mechanism=kafka.sasl_mechanism,
            ssl_context=kafka.ssl_context() if kafka.security_protocol == "SASL_SSL" else None,
        )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(kafka.ssl_context())
    return None
