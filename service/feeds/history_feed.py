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

from aiokafka.structs import ConsumerRecord

from processors.engagement_history import MemberHistories
from schemas import Engagement, InvalidRecord, decode
from service.feeds.topic_reader import POLL_MAX_RECORDS, TopicReader
from streams.settings import KafkaSettings
from streams.topics import ENGAGEMENTS

log = logging.getLogger(__name__)


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
        self.kafka = kafka
        self.histories = histories
        self.topic = kafka.topic(topic_name)
        self.reader = TopicReader(kafka, [self.topic], max_records=poll_max_records)
        self.ready = asyncio.Event()
        self.applied = 0
        self.skipped = 0

    async def start(self) -> None:
        """Connect, assign every partition, seek each to its beginning, note the end offsets."""
        await self.reader.open()
        log.info(
            "history feed replays %s from the beginning: %d records on %d partitions",
            self.topic,
            sum(end - self.reader.beginnings[tp] for tp, end in self.reader.targets.items()),
            len(self.reader.partitions),
        )
        self._check_caught_up()

    async def stop(self) -> None:
        """Disconnect (nothing to commit or save: the next start replays the topic)."""
        await self.reader.close()

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
            polled = await self.reader.read()
            for records in polled.values():
                for record in records:
                    self._apply(record)
            await self.reader.advance(polled)
            self._check_caught_up()

    def lag(self) -> int:
        """Records not yet applied, summed over partitions (0 when fully caught up)."""
        return self.reader.lag()

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

    def _check_caught_up(self) -> None:
        if self.ready.is_set() or not self.reader.caught_up():
            return
        log.info(
            "history feed caught up: %d members, %d events",
            len(self.histories),
            self.histories.steps(),
        )
        self.ready.set()
