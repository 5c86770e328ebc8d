"""The prompt processor role: a Faust app with one agent per side (see ``prompt_handlers``).

Partition/offset/commit behaviour: each agent runs with concurrency 1, so records of a
partition are handled strictly in order. The input topics are subscribed with ``acks=False``:
faust neither tracks nor commits them, because its acknowledgements run ahead of processing
(``streams.prompt_commits`` has the reproduced loss). A ``PromptCommitter`` admits each
record against its ``OffsetLedger`` (seeking back over anything not delivered), tracks every
send the record causes (prompts, repartitioned engagements, dead letters, table changelog
writes), and commits a partition's offset only once the records below it are processed and
their sends acknowledged: on a timer, before partitions are revoked, and at shutdown. A
committed offset therefore always has its effects in Kafka: at-least-once. Duplicates after
a crash carry versions that only grow and are idempotent downstream. Table state (post
features and counts, percentile sketches, member profiles, histories and negatives) is
recovered from the changelog topics on restart. A timer sends a tick to every partition of
``engagements.by-member`` this worker owns, so debounced member changes are published even
when no further event arrives. The producer is idempotent with ``acks=all``
(``streams.faust_transport``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import faust
from aiokafka.errors import KafkaError
from faust.types import TP
from prometheus_client import CollectorRegistry

from models.prompt_tokenizer import load_prompt_tokenizer
from models.settings import EncoderSettings
from processors.feature_sketches import PartitionSketches
from processors.prompts import PromptLibrary
from processors.token_budget import TokenMeter
from streams.backoff import retry
from streams.broker_wait import when_broker_answers
from streams.deliveries import DeliveryTracker
from streams.faust_transport import (
    Consumer,
    TrackedTable,
    current_event,
    ready_batches,
    use_event_loop,
    use_feedline_transport,
)
from streams.kafka_clients import admin_client
from streams.member_bundles import bundle_by_partition
from streams.metrics import PromptMetrics, serve_metrics
from streams.prompt_commits import PromptCommitter, ResumeOffsets
from streams.prompt_handlers import PromptHandlers, PromptTables
from streams.prompt_settings import PromptWorkerSettings
from streams.records import Incoming, Outgoing, normalise_headers
from streams.settings import KafkaSettings
from streams.table_batch import (
    BatchScope,
    InPartition,
    batch_tables,
    flush_tables,
    forget_tables,
)
from streams.table_state import changelog_identity, keep_or_reset
from streams.topics import (
    ENGAGEMENTS,
    ENGAGEMENTS_BY_MEMBER,
    MEMBERS_PROFILE,
    POSTS_CREATED,
    POSTS_DELETED,
    changelog_topics,
    ensure_changelog_topics,
    ensure_topics,
)

log = logging.getLogger(__name__)
RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
    "acks": False,  # offsets are committed by PromptCommitter, not from faust's acks
}
Handle = Callable[[Incoming, PromptTables], list[Outgoing]]
"""``PromptHandlers.on_post_side`` or ``on_member_side``."""
AGENTS = ("post-side", "member-side")
TABLES = (
    "posts",
    "post_counts",
    "sketches",
    "members",
    "member_history",
    "member_negatives",
    "member_pending",
)


class PromptApp(NamedTuple):
    """The Faust app and the committer that owns its offsets."""

    app: faust.App
    committer: PromptCommitter


def build_prompt_app(
    kafka: KafkaSettings, settings: PromptWorkerSettings, handlers: PromptHandlers
) -> PromptApp:
    """A Faust app wired to the catalog topics; ``run_prompt_worker`` runs it."""
    app = faust.App(
        kafka.topic(settings.app_id),
        broker=kafka.faust_broker_url(),
        broker_credentials=_credentials(kafka),
        store=f"{settings.store}://",
        datadir=str(settings.data_dir),
        table_standby_replicas=settings.standby_replicas,
        consumer_group_instance_id=settings.instance_id,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger_s,
        broker_session_timeout=settings.session_timeout_s,
        web_enabled=False,
        Table=TrackedTable,
    )
    use_feedline_transport(app, kafka.backoff())
    deliveries = DeliveryTracker()
    tables = PromptTables(
        **{n: app.Table(n, partitions=kafka.partitions, deliveries=deliveries) for n in TABLES}
    )
    by_member = kafka.topic(ENGAGEMENTS_BY_MEMBER.name)
    post_topics = [kafka.topic(s.name) for s in (POSTS_CREATED, POSTS_DELETED, ENGAGEMENTS)]
    member_topics = [kafka.topic(MEMBERS_PROFILE.name), by_member]
    committer = PromptCommitter(
        lambda: app.consumer,  # type: ignore[arg-type,return-value]
        [*post_topics, *member_topics],
        _resume_lookup(app, kafka),
        deliveries,
        handlers.metrics,
        settings.delivery_timeout_s,
        stall_s=settings.stall_s,
    )
    sinks: dict[str, faust.types.TopicT] = {}

    async def publish(records: list[Outgoing]) -> None:
        for out in records:
            if out.topic not in sinks:
                sinks[out.topic] = app.topic(out.topic, **RAW)
            delivery = await sinks[out.topic].send(
                key=out.key, value=out.value, headers=out.headers, partition=out.partition
            )
            deliveries.track(delivery)

    # each agent's view of the tables (the two sides own disjoint tables)
    scopes = {name: BatchScope() for name in AGENTS}
    views = {name: batch_tables(tables, scopes[name], settings.table_cache_keys) for name in AGENTS}

    def by_member_partition(key: bytes) -> int | None:
        consumer: Consumer = app.consumer  # type: ignore[assignment]
        return consumer.key_partition(by_member, key)

    async def consume(
        name: str, stream: faust.StreamT[bytes], handle: Handle, linger_s: float = 0.0
    ) -> None:
        scope, batch = scopes[name], views[name]
        async for taken in ready_batches(stream, settings.batch_max, linger_s):
            async with committer.batch(name):
                out: list[Outgoing] = []
                last_of: dict[int, faust.types.EventT] = {}
                for event in taken:
                    if not _current(app, event):
                        continue  # fetched before a rebalance: faust's own check, redone
                    record = _incoming(event)
                    tp = TP(record.topic, record.partition)
                    with current_event(event):
                        if await committer.admit(tp, record.offset):
                            scope.partition = record.partition
                            out += handle(record, batch)
                            committer.processed(tp, record.offset)
                            last_of[record.partition] = event
                # the batch's sends, tracked, before a commit may see its offsets
                flush_tables(batch, _in_partition_of(last_of))
                await publish(bundle_by_partition(out, by_member, by_member_partition))

    @app.agent(app.topic(*post_topics, **RAW), name="post-side", concurrency=1)
    async def post_agent(stream: faust.StreamT[bytes]) -> None:
        await consume("post-side", stream, handlers.on_post_side, settings.post_linger_s)

    @app.agent(app.topic(*member_topics, **RAW), name="member-side", concurrency=1)
    async def member_agent(stream: faust.StreamT[bytes]) -> None:
        await consume("member-side", stream, handlers.on_member_side)

    @app.timer(interval=settings.tick_interval_s)
    async def tick() -> None:
        owned = [tp.partition for tp in app.assignor.assigned_actives() if tp.topic == by_member]
        await publish([handlers.tick(partition) for partition in owned])

    @app.timer(interval=settings.commit_interval_s)
    async def commit() -> None:
        await committer.commit()

    @app.timer(interval=settings.stall_check_s)
    async def refetch_stalled() -> None:
        try:
            await committer.refetch_stalled()
        except KafkaError as error:  # the broker is away: the next check tries again
            log.info("stall check skipped: %s", error)

    # mode signals call receivers as (sender, *args, signal=..., **kwargs); mode's stubs type
    # the receiver too narrowly for a coroutine function, hence the ignores
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0]
        await committer.on_revoked(revoked)
        # the partitions' next owners change their keys: what this worker remembers is stale
        handlers.sketches.forget()
        handlers.pending.forget()
        for view in views.values():
            forget_tables(view)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def on_shutdown(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await committer.on_revoked(set())

    return PromptApp(app, committer)


def _resume_lookup(app: faust.App, kafka: KafkaSettings) -> ResumeOffsets:
    """Where the app's group resumes, read by its own consumer, retried while the broker is
    unreachable."""

    async def look_up(partitions: Sequence[TP]) -> dict[TP, int]:
        consumer: Consumer = app.consumer  # type: ignore[assignment]
        return await retry(
            lambda: consumer.resume_offsets(partitions),
            kafka.backoff(),
            f"reading where {app.conf.id!r} resumes",
            retry_on=(KafkaError,),
        )

    return look_up


def run_prompt_worker(
    kafka: KafkaSettings, settings: PromptWorkerSettings, encoder: EncoderSettings
) -> None:
    """Create missing topics, expose metrics, and run the worker until SIGTERM/SIGINT."""
    use_event_loop(settings.event_loop)
    metrics = PromptMetrics(CollectorRegistry())
    if settings.metrics_port:
        serve_metrics(metrics.registry, settings.metrics_port, settings.metrics_host)
    app_id = kafka.topic(settings.app_id)

    def create_topics() -> dict[str, str] | None:
        ensure_topics(kafka)
        ensure_changelog_topics(kafka, app_id, TABLES)
        if settings.store != "rocksdb":
            return None
        return changelog_identity(admin_client(kafka), changelog_topics(app_id, TABLES))

    identity = when_broker_answers(kafka, "prompt processor", create_topics)
    if identity is not None:
        kept = keep_or_reset(settings.data_dir, identity)
        log.info("local table state in %s %s", settings.data_dir, "kept" if kept else "reset")
    tokenizer = load_prompt_tokenizer(encoder)
    config = settings.prompt_config()
    handlers = PromptHandlers(
        kafka,
        metrics,
        PromptLibrary(config, TokenMeter(tokenizer)),
        settings.reembed_policy(),
        PartitionSketches(config.sketch_k, settings.sketch_refresh_every),
    )
    app, _ = build_prompt_app(kafka, settings, handlers)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def _in_partition_of(events: dict[int, faust.types.EventT]) -> InPartition:
    """Table writes land in a partition while one of its batch's records is current."""
    return lambda partition: current_event(events[partition])


def _current(app: faust.App, event: faust.types.EventT) -> bool:
    """Whether ``event`` is still this worker's to handle: not fetched before a rebalance that
    happened while it waited in a batch. faust's stream skips such records as it reads them
    (``Stream._c_aiter``); a batch has to ask again when it is handled."""
    return (
        app.flow_control.is_active() and event.message.generation_id == app.consumer_generation_id
    )


def _incoming(event: faust.types.EventT) -> Incoming:
    message = event.message
    return Incoming(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        normalise_headers(message.headers),
        int(message.timestamp * 1000) if message.timestamp else None,  # faust: seconds
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
