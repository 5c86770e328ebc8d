"""The prompt processor as it was wired before issue 12, for ``bench.worker_throughput``'s
baseline only: faust's stock transport, input topics acknowledged by faust and committed from
those acknowledgements (which can run past unprocessed records; never use this to run the
pipeline).

    FEEDLINE_KAFKA_BOOTSTRAP_SERVERS=... python -m bench.acked_prompt_worker
"""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CollectorRegistry

from models.encoder import load_tokenizer
from models.settings import EncoderSettings
from processors.feature_sketches import PartitionSketches
from processors.prompts import PromptLibrary
from processors.token_budget import TokenMeter
from streams.metrics import PromptMetrics
from streams.prompt_handlers import PromptHandlers, PromptTables
from streams.prompt_settings import PromptWorkerSettings
from streams.prompt_worker import TABLES, _incoming
from streams.records import Outgoing
from streams.settings import KafkaSettings
from streams.topics import (
    ENGAGEMENTS,
    ENGAGEMENTS_BY_MEMBER,
    MEMBERS_PROFILE,
    POSTS_CREATED,
    POSTS_DELETED,
    ensure_changelog_topics,
)

RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def build_acked_app(
    kafka: KafkaSettings, settings: PromptWorkerSettings, handlers: PromptHandlers
) -> faust.App:
    """The pre-issue-12 app: faust commits what its streams acknowledged."""
    app = faust.App(
        kafka.topic(settings.app_id),
        broker=kafka.faust_broker_url(),
        store="memory://",
        datadir=str(settings.data_dir),
        topic_partitions=kafka.partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
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


def main() -> None:
    """Run the baseline worker until SIGTERM."""
    kafka, settings, encoder = KafkaSettings(), PromptWorkerSettings(), EncoderSettings()
    ensure_changelog_topics(kafka, kafka.topic(settings.app_id), TABLES)
    tokenizer, _ = load_tokenizer(encoder)
    config = settings.prompt_config()
    handlers = PromptHandlers(
        kafka,
        PromptMetrics(CollectorRegistry()),
        PromptLibrary(config, TokenMeter(tokenizer)),
        settings.reembed_policy(),
        PartitionSketches(config.sketch_k, settings.sketch_refresh_every),
    )
    app = build_acked_app(kafka, settings, handlers)
    faust.Worker(
        app, loglevel="WARNING", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
