"""Feeds the index store from ``embeddings.posts`` and ``embeddings.members``.

Partition/offset/commit behaviour: the feed assigns every partition of both compacted topics
(no group rebalancing: each service replica holds the whole index). At start it loads the
newest usable snapshot and seeks each partition to the offset saved with it; without one (or
when its offsets fell out of retention, see ``service.feeds.index_start``) it replays from the
beginning. It is ready once its position reached, on every partition, the end offset observed
at start (x-algorithm's Thunder rule: serve only after catching up). Records are applied in
partition order, a poll batch at a time; the store's version check makes replays harmless.
Invalid updates are dead-lettered and skipped. With snapshots enabled, the offsets a written
snapshot covers are committed to ``IndexSettings.consumer_group``, never earlier.

Model rollouts: ``switch()`` replaces the store with a shadow built by
``service.feeds.rollout`` between two batches, in the feed's own task, and seeks every
partition to the offsets the shadow covers (back, to re-apply what the old store got meanwhile;
or forward, past what the shadow already holds).

What each record does to the store (decoding, re-embedding another model's updates, the version
rules) is ``service.feeds.index_updates``; reading the partitions is
``service.feeds.topic_reader``; snapshots and their commits are
``service.feeds.index_checkpoint``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import NamedTuple

from aiokafka import AIOKafkaProducer

from index_store import IndexSettings, IndexStore
from index_store.snapshots import SnapshotStore
from index_store.snapshots.start_plan import StartPlan
from schemas import Entity
from service.feeds.feed_metrics import IndexMetrics
from service.feeds.index_checkpoint import IndexCheckpointer
from service.feeds.index_start import open_index
from service.feeds.index_updates import IndexUpdates, Reembed
from service.feeds.topic_reader import Positions, TopicReader
from streams.dlq import dead_letter
from streams.kafka_clients import aiokafka_producer
from streams.records import Incoming, from_consumer_record
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_MEMBERS, EMBEDDINGS_POSTS

log = logging.getLogger(__name__)


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
        self.reader = TopicReader(
            kafka,
            self._entities,
            group_id=settings.consumer_group if self._snapshots is not None else None,
        )
        self._checkpoints: IndexCheckpointer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._updates: IndexUpdates | None = None
        self._switch: _SwitchRequest | None = None
        self._retired: list[IndexCheckpointer] = []
        self.plan: StartPlan | None = None
        self.ready = asyncio.Event()
        self.applied = 0

    @property
    def store(self) -> IndexStore:
        """The index (available once ``start()`` returned)."""
        if self._updates is None:
            raise RuntimeError("IndexFeed.start() has not been called")
        return self._updates.store

    async def start(self) -> None:
        """Connect, restore the newest usable snapshot (or start empty), position partitions."""
        self._producer = aiokafka_producer(self.kafka)
        await self._producer.start()
        await self.reader.open()
        opened = await open_index(
            self.settings,
            self._snapshots,
            self.metrics,
            self.model_version,
            self.dim,
            self.reader.beginnings,
            self.reader.targets,
        )
        self.plan = opened.plan
        self._updates = self._updates_for(opened.store, self.reembed)
        self.reader.seek(opened.offsets)
        self._checkpoints = self._new_checkpointer()
        if self._checkpoints is not None and opened.plan.snapshot is not None:
            self._checkpoints.restored(opened.plan.snapshot, self.reader.positions)
        self._check_caught_up()

    def _updates_for(self, store: IndexStore, reembed: Reembed | None) -> IndexUpdates:
        return IndexUpdates(store, self._entities, self.kafka, self.metrics, reembed=reembed)

    def _new_checkpointer(self) -> IndexCheckpointer | None:
        if self._snapshots is None:
            return None
        return IndexCheckpointer(self.settings, self._snapshots, self.metrics, self.reader.commit)

    async def stop(self, *, snapshot: bool = True) -> None:
        """Write a final snapshot (when enabled and started), then disconnect."""
        try:
            if snapshot and self._checkpoints is not None and self._updates is not None:
                await self._checkpoints.final(self.store, self.reader.positions)
        finally:
            await self.reader.close()
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
        polled = await self.reader.read()
        for messages in polled.values():
            await self._apply([from_consumer_record(m) for m in messages])
        await self.reader.advance(polled)
        self._check_caught_up()
        if self._checkpoints is not None:
            await self._checkpoints.maybe_begin(self.store, self.reader.positions)
        if not polled:
            await asyncio.to_thread(self.store.maintain)

    async def switch(
        self, store: IndexStore, positions: Positions, reembed: Reembed | None = None
    ) -> None:
        """Serve ``store`` from the next batch on, continuing from ``positions`` (the offsets
        it covers, per partition); ``reembed`` embeds with ``store``'s model. Returns once
        switched; needs ``run()`` going."""
        missing = sorted(str(tp) for tp in self.reader.positions if tp not in positions)
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
        self._updates = self._updates_for(request.store, request.reembed)
        self.reembed = request.reembed
        self.model_version, self.dim = request.store.model_version, request.store.dim
        self.reader.seek(request.positions)
        if self._checkpoints is not None:
            # a fresh checkpointer: the last snapshot's offsets may equal the new positions,
            # but it holds the old model's vectors, so the next due snapshot must be written
            self._retired.append(self._checkpoints)
            self._checkpoints = self._new_checkpointer()
        log.info(
            "index switched from %s to %s: %s", old.model_version, self.model_version,
            self.store.counts(),
        )  # fmt: skip
        request.done.set_result(None)

    def lag(self) -> int:
        """Records not yet applied, summed over partitions (0 when fully caught up)."""
        return self.reader.lag()

    async def _apply(self, records: Sequence[Incoming]) -> None:
        """Apply one partition's batch in a thread, then dead-letter what failed."""
        assert self._updates is not None and self._producer is not None
        failures = await asyncio.to_thread(self._updates.apply, records, live=self.ready.is_set())
        self.applied += len(records) - len(failures)
        for record, error in failures:
            letter = dead_letter(record, error)
            await self._producer.send_and_wait(
                letter.topic, value=letter.value, key=letter.key, headers=letter.headers
            )

    def _check_caught_up(self) -> None:
        if not self.ready.is_set() and self.reader.caught_up():
            log.info("index caught up: %s", self.store.counts())
            self.ready.set()
