"""Reads every partition of some topics in order: the one follow-a-topic loop of the serve role.

Partition/offset/commit behaviour: one aiokafka consumer assigns every partition of the topics
itself (no group rebalancing: each service replica reads everything), reading only committed
records (``read_committed``). ``open()`` notes the beginning and end offsets at that moment;
the end offsets are the ``targets`` a reader has ``caught_up()`` with once its position reached
them on every partition. ``positions`` is the next offset to handle per partition: the caller
reads a batch, handles it, then ``advance()``s, which moves it to the consumer's position; that
also moves past transaction markers and compacted-away offsets, on partitions that returned no
record too, and never past a record not yet returned. A ``group_id`` is only for ``commit()``
(what monitoring reads lag from); offsets are never committed otherwise.

Used by the index feed (``embeddings.*``, from a snapshot's offsets), the history feed
(``engagements``, from the beginning) and the rollout (``embeddings.*``, from the beginning
to the end, then on).

Example::

    async with TopicReader(kafka, [kafka.topic("engagements")]) as reader:
        while not reader.caught_up():
            polled = await reader.read()
            for tp, records in polled.items():
                ...
            await reader.advance(polled)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from streams.errors import TopicError
from streams.kafka_clients import aiokafka_consumer
from streams.settings import KafkaSettings
from streams.topics import partition_counts

POLL_MAX_RECORDS = 2_000
POLL_TIMEOUT_MS = 500

Positions = dict[TopicPartition, int]
"""An offset per partition."""
Polled = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class TopicReader:
    """An assigned consumer over every partition of ``topics``, with positions and targets."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Iterable[str],
        *,
        group_id: str | None = None,
        max_records: int = POLL_MAX_RECORDS,
        absent_hint: str = "run `feedline topics create`",
    ) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        self.kafka = kafka
        self.topics = tuple(topics)
        self.group_id = group_id
        self.max_records = max_records
        self._absent_hint = absent_hint
        self._consumer: AIOKafkaConsumer | None = None
        self.beginnings: Positions = {}
        """The first retained offset per partition, as seen by ``open()``."""
        self.targets: Positions = {}
        """The end offset per partition, as seen by ``open()``: what catching up means."""
        self.positions: Positions = {}
        """The next offset to read per partition."""

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The started consumer (``open()`` first)."""
        if self._consumer is None:
            raise RuntimeError("TopicReader.open() has not been called")
        return self._consumer

    @property
    def partitions(self) -> list[TopicPartition]:
        """Every assigned partition (known once ``open()`` returned)."""
        return list(self.targets)

    async def open(self) -> None:
        """Connect, assign every partition, note their beginning and end offsets. Positions
        start at the beginnings; ``seek()`` moves them."""
        self._consumer = aiokafka_consumer(self.kafka, group_id=self.group_id)
        await self._consumer.start()
        partitions = await self._partitions()
        self._consumer.assign(partitions)
        self.beginnings = dict(await self._consumer.beginning_offsets(partitions))
        self.targets = dict(await self._consumer.end_offsets(partitions))
        self.seek(self.beginnings)

    async def _partitions(self) -> list[TopicPartition]:
        counts = await asyncio.to_thread(partition_counts, self.kafka, self.topics)
        if not counts:
            names = ", ".join(repr(t) for t in self.topics)
            raise TopicError(f"none of {names} exists; {self._absent_hint}")
        return [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read every partition from ``offsets`` (a partition it lacks: from its beginning)."""
        for tp in self.targets:
            offset = offsets.get(tp, self.beginnings[tp])
            self.consumer.seek(tp, offset)
            self.positions[tp] = offset

    async def read(self, max_records: int | None = None) -> Polled:
        """One poll (at most ``POLL_TIMEOUT_MS`` of waiting): records per partition in offset
        order. ``positions`` stay until ``advance(polled)`` says they were handled."""
        return await self.consumer.getmany(
            timeout_ms=POLL_TIMEOUT_MS, max_records=max_records or self.max_records
        )

    async def advance(self, polled: Polled) -> None:
        """The records of the last ``read()`` are handled: move ``positions`` past them, and
        to the consumer's position (past markers and gaps) on every partition. Call it before
        the next ``read()``; a reader stopped in between (cancelled mid-batch) keeps the
        positions of what was handled, so a snapshot of them loses nothing."""
        for tp, records in polled.items():
            self.positions[tp] = max(self.positions[tp], records[-1].offset + 1)
        for tp in self.positions:
            self.positions[tp] = max(self.positions[tp], await self.consumer.position(tp))

    def reached(self, ends: Mapping[TopicPartition, int]) -> bool:
        """True when the position reached ``ends`` on every partition."""
        return all(self.positions.get(tp, 0) >= end for tp, end in ends.items())

    def caught_up(self) -> bool:
        """True once the position reached the end offsets ``open()`` saw, on every partition
        (at once when the topics were empty)."""
        return self.reached(self.targets)

    async def end_offsets(self) -> Positions:
        """The end offsets now (a fresh look at the broker)."""
        return dict(await self.consumer.end_offsets(self.partitions))

    def lag(self) -> int:
        """Records not yet read, summed over partitions: to the last stable offset the
        consumer last fetched (what ``read_committed`` can read), else to the targets."""
        total = 0
        for tp, target in self.targets.items():
            end = self.consumer.last_stable_offset(tp)
            total += max(0, (target if end is None else end) - self.positions.get(tp, 0))
        return total

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` to ``group_id`` (needs one)."""
        if self.group_id is None:
            raise RuntimeError("a TopicReader without a group_id commits nothing")
        await self.consumer.commit(dict(offsets))

    async def close(self) -> None:
        """Disconnect (commits nothing)."""
        if self._consumer is not None:
            await self._consumer.stop()

    async def __aenter__(self) -> TopicReader:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
