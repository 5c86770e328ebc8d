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

Model rollouts: ``switch()`` replaces the store with a shadow built by ``streams.rollout``
between two batches, in the feed's own task, and seeks every partition to the offsets the
shadow covers (back, to re-apply what the old store got meanwhile; or forward, past what the
shadow already holds). An update of another model version that carries its prompt ``text``
is re-embedded by ``reembed`` before it applies, so embedding workers still running the old
model keep the index fresh; without ``reembed`` or text it is dead-lettered as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from index_store import IndexSettings, IndexStore, InvalidUpdate, StoreUpdate
from index_store.persistence import restore
from index_store.snapshots import SnapshotStore
from index_store.start_plan import StartPlan, plan_start
from schemas import EmbeddingUpdate, Entity, InvalidRecord, decode
from streams.dlq import dead_letter, failure_reason
from streams.errors import TopicError
from streams.index_checkpoint import IndexCheckpointer, Positions
from streams.kafka_clients import aiokafka_consumer, aiokafka_producer
from streams.metrics import IndexMetrics
from streams.records import Incoming, from_consumer_record
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_MEMBERS, EMBEDDINGS_POSTS, partition_counts

log = logging.getLogger(__name__)

POLL_MAX_RECORDS = 2_000

Reembed = Callable[[list[str]], np.ndarray]
"""Prompt texts to ``(N, dim)`` vectors of the store's model (blocking; runs in a thread)."""


class _SwitchRequest(NamedTuple):
    store: IndexStore
    positions: Positions
    reembed: Reembed | None
    done: asyncio.Future[None]


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
        reembed: Reembed | None = None,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.metrics = metrics
        self.dim = dim
        self.model_version = model_version
        self.reembed = reembed
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
        self._switch: _SwitchRequest | None = None
        self._retired: list[IndexCheckpointer] = []
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
        self._producer = aiokafka_producer(self.kafka)
        self._consumer = aiokafka_consumer(self.kafka, group_id=group)
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
        try:
            while True:
                await self._step()
        finally:
            if self._switch is not None and not self._switch.done.done():
                self._switch.done.set_exception(RuntimeError("the index feed stopped"))

    async def _step(self) -> None:
        """One poll batch applied; a pending switch happens before it."""
        if self._switch is not None:
            request, self._switch = self._switch, None
            self._switch_now(request)
        polled = await self.consumer.getmany(timeout_ms=500, max_records=POLL_MAX_RECORDS)
        for messages in polled.values():
            await self._apply_all([from_consumer_record(m) for m in messages])
        # the consumer's position, not the last offset + 1: it also moves past transaction
        # markers (the embedding workers write in transactions) and compacted-away offsets,
        # on partitions that returned no record too
        for tp in self._positions:
            self._positions[tp] = max(self._positions[tp], await self.consumer.position(tp))
        if not self.ready.is_set():
            await self._check_caught_up()
        if self._checkpoints is not None:
            await self._checkpoints.maybe_begin(self.store, self._positions)
        if not polled:
            await asyncio.to_thread(self.store.maintain)

    async def switch(
        self, store: IndexStore, positions: Positions, reembed: Reembed | None = None
    ) -> None:
        """Serve ``store`` from the next batch on, continuing from ``positions`` (the offsets
        it covers, per partition); ``reembed`` embeds with ``store``'s model. Returns once
        switched; needs ``run()`` going."""
        missing = sorted(str(tp) for tp in self._positions if tp not in positions)
        if missing:
            raise ValueError(f"the new store covers no offsets of {missing}")
        if self._switch is not None:
            raise RuntimeError("a store switch is already pending")
        request = _SwitchRequest(
            store, positions, reembed, asyncio.get_running_loop().create_future()
        )
        self._switch = request
        try:
            await request.done
        finally:
            if self._switch is request:
                self._switch = None

    def _switch_now(self, request: _SwitchRequest) -> None:
        old = self.store
        self._store, self.reembed = request.store, request.reembed
        self.model_version, self.dim = request.store.model_version, request.store.dim
        for tp in self._positions:
            self.consumer.seek(tp, request.positions[tp])
            self._positions[tp] = request.positions[tp]
        if self._checkpoints is not None and self._snapshots is not None:
            # a fresh checkpointer: the last snapshot's offsets may equal the new positions,
            # but it holds the old model's vectors, so the next due snapshot must be written
            self._retired.append(self._checkpoints)
            self._checkpoints = IndexCheckpointer(
                self.settings, self._snapshots, self.metrics, self._commit
            )
        log.info(
            "index switched from %s to %s: %s", old.model_version, self.model_version,
            self.store.counts(),
        )  # fmt: skip
        request.done.set_result(None)

    def lag(self) -> int:
        """Records not yet applied, summed over partitions (0 when fully caught up)."""
        total = 0
        for tp in self._targets:
            end = self.consumer.last_stable_offset(tp)  # read_committed: what it can read
            if end is not None:
                total += max(0, end - self._positions.get(tp, 0))
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
        decoded = self._reembed_foreign(decoded)
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

    def _reembed_foreign(
        self, decoded: list[tuple[Incoming, StoreUpdate]]
    ) -> list[tuple[Incoming, StoreUpdate]]:
        """Updates of another model version that carry their prompt, re-embedded with
        ``reembed`` (blocking: called from the apply thread)."""
        store = self.store
        foreign = [
            (n, update)
            for n, (_, (_, _, update)) in enumerate(decoded)
            if update is not None
            and update.model_version != store.model_version
            and update.text is not None
        ]
        if self.reembed is None or not foreign:
            return decoded
        vectors = self.reembed([update.text or "" for _, update in foreign])  # (N, dim)
        now_ms = int(time.time() * 1000)
        out = list(decoded)
        for row, (n, update) in enumerate(foreign):
            record, stored = decoded[n]
            fresh = update.with_vector(vectors[row], store.model_version, now_ms)
            out[n] = (record, stored._replace(update=fresh))
            self.metrics.reembedded.labels(stored.entity).inc()
        return out

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
