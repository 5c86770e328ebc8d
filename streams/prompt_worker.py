"""The prompt processor role: a Faust app with one agent per side (see ``prompt_handlers``).

Partition/offset/commit behaviour: each agent runs with concurrency 1, so records of a
partition are handled strictly in order. Faust acknowledges a record once the agent has moved
past it, and before committing offsets it flushes the producer (prompts, repartitioned
engagements, dead letters and table changelogs), so a committed offset always has its effects
in Kafka: at-least-once. Duplicates after a crash carry the same versions and are idempotent
downstream. Table state is recovered from the changelog topics on restart.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CollectorRegistry
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.metrics import PromptMetrics, serve_metrics
from streams.prompt_handlers import PromptHandlers
from streams.records import Incoming, Outgoing, normalise_headers
from streams.settings import KafkaSettings
from streams.topics import (
    ENGAGEMENTS,
    ENGAGEMENTS_BY_MEMBER,
    MEMBERS_PROFILE,
    POSTS_CREATED,
    POSTS_DELETED,
    ensure_topics,
)

log = logging.getLogger(__name__)


class PromptWorkerSettings(BaseSettings):
    """The prompt processor role (env prefix ``FEEDLINE_PROMPTS_``)."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_PROMPTS_", extra="ignore")

    app_id: str = Field("feedline-prompts", description="Faust app id = consumer group id")
    data_dir: Path = Path(".feedline/prompts")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65_535, description="0: no /metrics server")
    log_level: str = "WARNING"


def build_prompt_app(
    kafka: KafkaSettings, settings: PromptWorkerSettings, metrics: PromptMetrics
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
    handlers = PromptHandlers(kafka, metrics)
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    posts = app.Table("posts", partitions=kafka.partitions)
    members = app.Table("members", partitions=kafka.partitions)
    post_side = app.topic(
        *(kafka.topic(s.name) for s in (POSTS_CREATED, POSTS_DELETED, ENGAGEMENTS)), **raw
    )
    member_side = app.topic(
        *(kafka.topic(s.name) for s in (MEMBERS_PROFILE, ENGAGEMENTS_BY_MEMBER)), **raw
    )
    sinks: dict[str, faust.types.TopicT] = {}

    async def publish(records: list[Outgoing]) -> None:
        for out in records:
            if out.topic not in sinks:
                sinks[out.topic] = app.topic(out.topic, **raw)
            await sinks[out.topic].send(key=out.key, value=out.value, headers=out.headers)

    @app.agent(post_side, name="post-side", concurrency=1)
    async def post_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await publish(handlers.on_post_side(_incoming(event), posts))

    @app.agent(member_side, name="member-side", concurrency=1)
    async def member_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await publish(handlers.on_member_side(_incoming(event), members))

    return app


def run_prompt_worker(kafka: KafkaSettings, settings: PromptWorkerSettings) -> None:
    """Create missing topics, expose metrics, and run the worker until SIGTERM/SIGINT."""
    ensure_topics(kafka)
    metrics = PromptMetrics(CollectorRegistry())
    if settings.metrics_port:
        serve_metrics(metrics.registry, settings.metrics_port, settings.metrics_host)
    app = build_prompt_app(kafka, settings, metrics)
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
