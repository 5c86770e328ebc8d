"""Follows ``engagements`` into ``MemberHistories`` for the query service's sequential ranker.

Partition/offset/commit behaviour: the feed assigns every partition of ``engagements`` (no
consumer group, no rebalancing: each service replica holds every member's history) and seeks
each to its beginning offset. The history is rebuilt at every start from what the topic still
retains; nothing is saved and no offset is ever committed, so a member's history reaches back
only as far as the topic's retention (``retention.ms``). The feed is ready once its position
reached, on every partition, the end offset observed at start (at once when the topic is
empty). Records are applied in partition order a poll batch at a time; ``MemberHistories``
puts each member's events in time order across partitions and ignores replayed duplicates.
Invalid records are logged and skipped, not dead-lettered: the prompt processor reads the same
topic and already dead-letters them.

Example::

    histories = MemberHistories()
    async with HistoryFeed(kafka, histories) as feed:
        task = asyncio.create_task(feed.run())
        await feed.ready.wait()     # caught up: histories answers queries
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from processors.engagement_history import MemberHistories
from schemas import Engagement, InvalidRecord, decode
from streams.errors import TopicError
from streams.kafka_clients import aiokafka_consumer
from streams.settings import KafkaSettings
from streams.topics import ENGAGEMENTS, partition_counts

log = logging.getLogger(__name__)

POLL_MAX_RECORDS = 2_000


class HistoryFeed:
    """Replays and follows ``engagements`` into a ``MemberHistories``.

    Example::

        feed = HistoryFeed(kafka, histories)
        await feed.start()          # all partitions assigned, positioned at their beginning
        task = asyncio.create_task(feed.run())
        await feed.ready.wait()     # caught up to the end offsets seen at start
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        histories: MemberHistories,
        *,
        topic_name: str = ENGAGEMENTS.name,
        poll_max_records: int = POLL_MAX_RECORDS,
    ) -> None:
        if poll_max_records < 1:
            raise ValueError(f"poll_max_records must be at least 1, got {poll_max_records}")
        self.kafka = kafka
        self.histories = histories
        self.topic = kafka.topic(topic_name)
        self.poll_max_records = poll_max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._targets: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}
        self.ready = asyncio.Event()
        self.applied = 0
        self.skipped = 0

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The started consumer (``start()`` first)."""
        if self._consumer is None:
            raise RuntimeError("HistoryFeed.start() has not been called")
        return self._consumer

    async def start(self) -> None:
        """Connect, assign every partition, seek each to its beginning, note the end offsets."""
        self._consumer = aiokafka_consumer(self.kafka, group_id=None)
        await self._consumer.start()
        partitions = await self._partitions()
        self._consumer.assign(partitions)
        beginnings = await self._consumer.beginning_offsets(partitions)
        self._targets = dict(await self._consumer.end_offsets(partitions))
        for tp in partitions:
            self._consumer.seek(tp, beginnings[tp])
            self._positions[tp] = beginnings[tp]
        log.info(
            "history feed replays %s from the beginning: %d records on %d partitions",
            self.topic,
            sum(self._targets[tp] - beginnings[tp] for tp in partitions),
            len(partitions),
        )
        await self._check_caught_up()

    async def _partitions(self) -> list[TopicPartition]:
        counts = await asyncio.to_thread(partition_counts, self.kafka, [self.topic])
        if not counts:
            raise TopicError(f"topic {self.topic!r} does not exist; run `feedline topics create`")
        return [TopicPartition(self.topic, p) for p in range(counts[self.topic])]

    async def stop(self) -> None:
        """Disconnect (nothing to commit or save: the next start replays the topic)."""
        if self._consumer is not None:
            await self._consumer.stop()

    async def __aenter__(self) -> HistoryFeed:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run(self) -> None:
        """Apply records until cancelled."""
        while True:
            polled = await self.consumer.getmany(timeout_ms=500, max_records=self.poll_max_records)
            for tp, records in polled.items():
                for record in records:
                    self._apply(record)
                self._positions[tp] = records[-1].offset + 1
            if not self.ready.is_set():
                await self._check_caught_up()

    def lag(self) -> int:
        """Records not yet applied, summed over partitions (0 when fully caught up)."""
        total = 0
        for tp in self._targets:
            highwater = self.consumer.highwater(tp)
            end = self._targets[tp] if highwater is None else highwater
            total += max(0, end - self._positions.get(tp, 0))
        return total

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            engagement = decode(Engagement, record.value, key=record.key, key_field="post_id")
        except InvalidRecord as error:
            self.skipped += 1
            log.warning(
                'skipped an invalid engagement (%s: %s) partition="%s[%d]" offset="%d"',
                error.reason,
                error,
                record.topic,
                record.partition,
                record.offset,
            )
            return
        self.histories.add_engagement(engagement)
        self.applied += 1

    async def _check_caught_up(self) -> None:
        for tp, end in self._targets.items():
            if self._positions[tp] < end:
                # the fetch position also moves past offsets without records (control records)
                self._positions[tp] = max(self._positions[tp], await self.consumer.position(tp))
            if self._positions[tp] < end:
                return
        log.info(
            "history feed caught up: %d members, %d events",
            len(self.histories),
            self.histories.steps(),
        )
        self.ready.set()
