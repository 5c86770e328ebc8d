"""Feeds the index store from ``embeddings.posts`` and ``embeddings.members``.

Partition/offset/commit behaviour: the feed assigns every partition of both compacted topics
(no group rebalancing: each service replica holds the whole index). At start it loads the
newest usable snapshot and seeks each partition to the offset saved with it; without one (or
when its offsets fell out of retention, see ``index_store.start_plan``) it replays from the
beginning. It is ready once its position reached, on every partition, the end offset observed
at start (x-algorithm's Thunder rule: serve only after catching up). Records are applied in
partition order, a poll batch at a time; the store's version check makes replays harmless.
Invalid updates are dead-lettered and skipped. With snapshots enabled, the offsets a written
snapshot covers are committed to ``IndexSettings.consumer_group``, never earlier.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from index_store import IndexSettings, IndexStore, InvalidUpdate, StoreUpdate
from index_store.persistence import restore
from index_store.snapshots import SnapshotStore
from index_store.start_plan import StartPlan, plan_start
from schemas import EmbeddingUpdate, Entity, InvalidRecord, decode
from streams.dlq import dead_letter, failure_reason
from streams.errors import TopicError
from streams.index_checkpoint import IndexCheckpointer, Positions
from streams.metrics import IndexMetrics
from streams.records import Incoming, from_consumer_record
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_MEMBERS, EMBEDDINGS_POSTS, partition_counts

log = logging.getLogger(__name__)

POLL_MAX_RECORDS = 2_000


class IndexFeed:
    """Restores, replays and follows the embedding topics into an ``IndexStore``.

    Example::

        feed = IndexFeed(kafka, IndexSettings(), metrics, dim=384, model_version=version)
        await feed.start()          # snapshot restored (or not), partitions positioned
        task = asyncio.create_task(feed.run())
        await feed.ready.wait()     # caught up: feed.store answers queries
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: IndexSettings,
        metrics: IndexMetrics,
        *,
        dim: int,
        model_version: str,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.metrics = metrics
        self.dim = dim
        self.model_version = model_version
        self._entities: dict[str, Entity] = {
            kafka.topic(EMBEDDINGS_POSTS.name): "post",
            kafka.topic(EMBEDDINGS_MEMBERS.name): "member",
        }
        self._snapshots = (
            SnapshotStore(settings.snapshot_dir, settings.snapshot_keep)
            if settings.snapshots_enabled
            else None
        )
        self._checkpoints: IndexCheckpointer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._store: IndexStore | None = None
        self._targets: dict[TopicPartition, int] = {}
        self._positions: Positions = {}
        self.plan: StartPlan | None = None
        self.ready = asyncio.Event()
        self.applied = 0

    @property
    def store(self) -> IndexStore:
        """The index (available once ``start()`` returned)."""
        if self._store is None:
            raise RuntimeError("IndexFeed.start() has not been called")
        return self._store

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The started consumer (``start()`` first)."""
        if self._consumer is None:
            raise RuntimeError("IndexFeed.start() has not been called")
        return self._consumer

    async def start(self) -> None:
        """Connect, restore the newest usable snapshot (or start empty), position partitions."""
        group = self.settings.consumer_group if self._snapshots is not None else None
        self._producer = AIOKafkaProducer(acks="all", **self.kafka.aiokafka_config())
        self._consumer = AIOKafkaConsumer(
            group_id=group, enable_auto_commit=False, **self.kafka.aiokafka_config()
        )
        await self._producer.start()
        await self._consumer.start()
        partitions = await self._partitions()
        self._consumer.assign(partitions)
        beginnings = await self._consumer.beginning_offsets(partitions)
        self._targets = dict(await self._consumer.end_offsets(partitions))
        self.plan = await self._plan(beginnings)
        await self._open_store(self.plan)
        for tp in partitions:
            start = self.plan.offsets.get((tp.topic, tp.partition), beginnings[tp])
            self._consumer.seek(tp, start)
            self._positions[tp] = start
        if self._checkpoints is not None and self.plan.snapshot is not None:
            self._checkpoints.restored(self.plan.snapshot, self._positions)
        await self._check_caught_up()

    async def _partitions(self) -> list[TopicPartition]:
        counts = await asyncio.to_thread(partition_counts, self.kafka, self._entities)
        partitions = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
        if not partitions:
            raise TopicError(
                f"none of {sorted(self._entities)} exists; run `feedline topics create`"
            )
        return partitions

    async def _plan(self, beginnings: dict[TopicPartition, int]) -> StartPlan:
        snapshot = None
        if self._snapshots is not None:
            snapshot = await asyncio.to_thread(self._snapshots.latest)
        plan = plan_start(
            snapshot,
            self.model_version,
            self.dim,
            {(tp.topic, tp.partition): offset for tp, offset in beginnings.items()},
            {(tp.topic, tp.partition): offset for tp, offset in self._targets.items()},
        )
        if plan.replay:
            self.metrics.rebuilds.labels(plan.reason).inc()
            log.info("index rebuilds by replaying its topics (%s)", plan.reason)
        return plan

    async def _open_store(self, plan: StartPlan) -> None:
        started = time.perf_counter()
        if plan.snapshot is None:
            self._store = IndexStore(self.dim, self.model_version, settings=self.settings)
            self.metrics.start_duration.set(0)
        else:
            self._store = await asyncio.to_thread(
                restore, plan.snapshot, self.model_version, self.settings, self.dim
            )
            elapsed = time.perf_counter() - started
            self.metrics.start_duration.set(elapsed)
            log.info(
                "index restored from snapshot %s in %.1f s: %s",
                plan.snapshot.manifest.snapshot_id,
                elapsed,
                self._store.counts(),
            )
        if self._snapshots is not None:
            self._checkpoints = IndexCheckpointer(
                self.settings, self._snapshots, self.metrics, self._commit
            )

    async def _commit(self, positions: Positions) -> None:
        await self.consumer.commit(dict(positions))

    async def stop(self, *, snapshot: bool = True) -> None:
        """Write a final snapshot (when enabled and started), then disconnect."""
        try:
            if snapshot and self._checkpoints is not None and self._store is not None:
                await self._checkpoints.final(self._store, self._positions)
        finally:
            if self._consumer is not None:
                await self._consumer.stop()
            if self._producer is not None:
                await self._producer.stop()

    async def run(self) -> None:
        """Apply records until cancelled; snapshot between batches when one is due."""
        while True:
            polled = await self.consumer.getmany(timeout_ms=500, max_records=POLL_MAX_RECORDS)
            for tp, messages in polled.items():
                await self._apply_all([from_consumer_record(m) for m in messages])
                self._positions[tp] = messages[-1].offset + 1
            if not self.ready.is_set():
                await self._check_caught_up()
            if self._checkpoints is not None:
                await self._checkpoints.maybe_begin(self.store, self._positions)
            if not polled:
                await asyncio.to_thread(self.store.maintain)

    def lag(self) -> int:
        """Records not yet applied, summed over partitions (0 when fully caught up)."""
        total = 0
        for tp in self._targets:
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                total += max(0, highwater - self._positions.get(tp, 0))
        return total

    async def _apply_all(self, records: Sequence[Incoming]) -> None:
        live = self.ready.is_set()
        failures = await asyncio.to_thread(self._apply_batch, records, live)
        assert self._producer is not None
        for record, error in failures:
            letter = dead_letter(record, error)
            await self._producer.send_and_wait(
                letter.topic, value=letter.value, key=letter.key, headers=letter.headers
            )

    def _apply_batch(
        self, records: Sequence[Incoming], live: bool
    ) -> list[tuple[Incoming, Exception]]:
        failures: list[tuple[Incoming, Exception]] = []
        decoded: list[tuple[Incoming, StoreUpdate]] = []
        for record in records:
            try:
                decoded.append((record, self._decode(record)))
            except InvalidRecord as invalid:
                failures.append((record, invalid))
        results = self.store.apply_batch([update for _, update in decoded], live=live)
        for (record, _), result in zip(decoded, results, strict=True):
            if isinstance(result, InvalidUpdate):
                failures.append((record, result))
        for record, failure in failures:
            name = self.kafka.catalog_name(record.topic)
            self.metrics.events.labels(name, "dead_lettered").inc()
            self.metrics.dead_letters.labels(name, failure_reason(failure)).inc()
        processed = len(records) - len(failures)
        if records and processed:
            self.metrics.events.labels(self.kafka.catalog_name(records[0].topic), "processed").inc(
                processed
            )
        self.applied += processed
        return sorted(failures, key=lambda failure: failure[0].offset)

    def _decode(self, record: Incoming) -> StoreUpdate:
        entity = self._entities[record.topic]
        entity_id = (record.key or b"").decode("utf-8", errors="replace")
        update = None if record.value is None else decode(EmbeddingUpdate, record.value)
        return StoreUpdate(entity, entity_id, update)

    async def _check_caught_up(self) -> None:
        caught_up = all(self._positions.get(tp, 0) >= end for tp, end in self._targets.items())
        if caught_up and not self.ready.is_set():
            log.info("index caught up: %s", self.store.counts())
            self.ready.set()
