"""Feeds the index store from ``embeddings.posts`` and ``embeddings.members``.

Partition/offset/commit behaviour: the compacted embedding topics *are* the index's durable
state, so the feed joins no consumer group and commits nothing: it assigns every partition,
replays from the beginning, and then follows the tail. It is ready once its position reached,
on every partition, the end offset observed at start-up (x-algorithm's Thunder rule: serve only
after catching up). Records are applied in partition order; the store's version check makes
replays harmless. Invalid updates are dead-lettered and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from index_store import IndexStore, InvalidUpdate
from schemas import EmbeddingUpdate, Entity, InvalidRecord, decode
from streams.dlq import dead_letter, failure_reason
from streams.errors import TopicError
from streams.metrics import StreamMetrics
from streams.records import Incoming, from_consumer_record
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_MEMBERS, EMBEDDINGS_POSTS, partition_counts

log = logging.getLogger(__name__)

POLL_MAX_RECORDS = 2_000


class IndexFeed:
    """Replays and follows the embedding topics into an ``IndexStore``."""

    def __init__(self, kafka: KafkaSettings, store: IndexStore, metrics: StreamMetrics) -> None:
        self.kafka = kafka
        self.store = store
        self.metrics = metrics
        self._entities: dict[str, Entity] = {
            kafka.topic(EMBEDDINGS_POSTS.name): "post",
            kafka.topic(EMBEDDINGS_MEMBERS.name): "member",
        }
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._targets: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}
        self.ready = asyncio.Event()
        self.applied = 0

    async def start(self) -> None:
        """Assign all partitions, seek to the beginning, note the end offsets to catch up to."""
        self._producer = AIOKafkaProducer(acks="all", **self.kafka.aiokafka_config())
        self._consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, **self.kafka.aiokafka_config()
        )
        await self._producer.start()
        await self._consumer.start()
        counts = await asyncio.to_thread(partition_counts, self.kafka, self._entities)
        partitions = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
        if not partitions:
            raise TopicError(
                f"none of {sorted(self._entities)} exists; run `feedline topics create`"
            )
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._targets = dict(await self._consumer.end_offsets(partitions))
        await self._check_caught_up()

    async def stop(self) -> None:
        """Disconnect."""
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The started consumer (``start()`` first)."""
        if self._consumer is None:
            raise RuntimeError("IndexFeed.start() has not been called")
        return self._consumer

    async def run(self) -> None:
        """Apply records until cancelled."""
        while True:
            polled = await self.consumer.getmany(timeout_ms=500, max_records=POLL_MAX_RECORDS)
            for tp, messages in polled.items():
                await self._apply_all([from_consumer_record(m) for m in messages])
                self._positions[tp] = messages[-1].offset + 1
            if not self.ready.is_set():
                await self._check_caught_up()

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
        for record, error in failures:
            letter = dead_letter(record, error)
            assert self._producer is not None
            await self._producer.send_and_wait(
                letter.topic, value=letter.value, key=letter.key, headers=letter.headers
            )

    def _apply_batch(
        self, records: Sequence[Incoming], live: bool
    ) -> list[tuple[Incoming, Exception]]:
        failures: list[tuple[Incoming, Exception]] = []
        for record in records:
            name = self.kafka.catalog_name(record.topic)
            try:
                self._apply(record, live)
            except (InvalidRecord, InvalidUpdate) as error:
                self.metrics.events.labels(name, "dead_lettered").inc()
                self.metrics.dead_letters.labels(name, failure_reason(error)).inc()
                failures.append((record, error))
                continue
            self.metrics.events.labels(name, "processed").inc()
            self.applied += 1
        return failures

    def _apply(self, record: Incoming, live: bool) -> None:
        entity = self._entities[record.topic]
        entity_id = (record.key or b"").decode("utf-8", errors="replace")
        update = None if record.value is None else decode(EmbeddingUpdate, record.value)
        self.store.apply(entity, entity_id, update, live=live)

    async def _check_caught_up(self) -> None:
        for tp, end in self._targets.items():
            if await self.consumer.position(tp) < end:
                return
        if not self.ready.is_set():
            log.info("index caught up: %s", self.store.counts())
            self.ready.set()
