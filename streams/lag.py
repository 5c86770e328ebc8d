"""Consumer-group lag: end offset minus committed offset, per partition, and how old the
oldest unconsumed record is.

The arithmetic (``lag_rows``, ``counted_partitions``, ``topic_lag_seconds``) is pure; broker
reads go through an ``OffsetsSource`` (``KafkaOffsetsSource`` in production, a fake in unit
tests), so ``measure_group`` runs without a broker too.

Offsets: a partition the group never committed counts from its earliest offset; a committed
offset that fell out of retention (below the earliest) counts from the earliest too, since
that is where the consumer resumes; a committed offset past the end (impossible unless the
topic was recreated) counts as 0.

Example::

    consumer_group_lag(KafkaSettings(), "feedline-embed", ["prompts.posts"])
    # {("prompts.posts", 0): 0, ("prompts.posts", 1): 3, ...}
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

from streams.errors import StreamsError
from streams.kafka_clients import admin_client, confluent_consumer
from streams.settings import KafkaSettings

NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group committed nothing yet
Partition = tuple[str, int]
"""``(topic, partition)``, the topic by its cluster name."""


class LagReadError(StreamsError):
    """Offsets or group state could not be read from the cluster."""


class GroupSpec(NamedTuple):
    """A consumer group to watch and the topics it is configured to read."""

    group: str
    """The consumer group id as the broker knows it (prefix applied)."""
    topics: tuple[str, ...] = ()
    """Its input topics (cluster names); see ``counted_partitions`` for when they count."""


class LagRow(NamedTuple):
    """The lag of one consumer group on one partition."""

    topic: str
    partition: int
    committed: int | None
    """The committed offset (the next record to consume); None when never committed."""
    earliest: int
    """The partition's low watermark (oldest offset still retained)."""
    latest: int
    """The partition's high watermark (offset the next produced record gets)."""
    lag: int
    """Records not yet consumed: ``latest - next_offset``, never negative."""
    oldest_ms: int | None = None
    """Timestamp (epoch ms) of the record at ``next_offset``; None when caught up or unread."""

    @property
    def next_offset(self) -> int:
        """Where the group resumes: the committed offset, or the earliest one if it never
        committed or its offset fell out of retention."""
        if self.committed is None:
            return self.earliest
        return max(self.committed, self.earliest)


class GroupLag(NamedTuple):
    """One reading of a consumer group: its members and per-partition lag."""

    group: str
    members: int
    rows: list[LagRow]


class GroupState(NamedTuple):
    """What the broker knows of a group: its committed offsets and how many members it has."""

    committed: dict[Partition, int]
    members: int


class OffsetsSource(Protocol):
    """Reads offsets from the cluster; each method raises ``LagReadError`` on broker errors."""

    def partition_counts(self) -> dict[str, int]:
        """Every existing topic (cluster name) and its partition count."""

    def group_state(self, group: str) -> GroupState:
        """Committed offsets (all topics) and member count of ``group``."""

    def watermarks(
        self, partitions: Sequence[Partition]
    ) -> tuple[dict[Partition, int], dict[Partition, int]]:
        """``(earliest, latest)`` offsets of ``partitions``."""

    def timestamps(self, positions: Mapping[Partition, int]) -> dict[Partition, int]:
        """Timestamp (epoch ms) of the first record at or after each position; partitions
        whose record could not be read in time are left out."""


def lag_rows(
    committed: Mapping[Partition, int],
    earliest: Mapping[Partition, int],
    latest: Mapping[Partition, int],
) -> list[LagRow]:
    """Lag of every partition in ``latest`` (sorted), from the group's ``committed`` offsets
    (missing or negative: never committed) and the partitions' watermarks.

    >>> lag_rows({("t", 0): 3}, {("t", 0): 0}, {("t", 0): 10})[0].lag
    7
    """
    rows = []
    for key in sorted(latest):
        offset = committed.get(key, NO_OFFSET)
        start, end = earliest.get(key, 0), latest[key]
        resume = start if offset < 0 else max(offset, start)
        rows.append(
            LagRow(key[0], key[1], None if offset < 0 else offset, start, end, max(0, end - resume))
        )
    return rows


def counted_partitions(
    spec: GroupSpec,
    committed: Iterable[Partition],
    partition_counts: Mapping[str, int],
    active: bool,
) -> list[Partition]:
    """The partitions whose lag is reported for a group (sorted; existing topics only):

    - every partition it has a committed offset on, configured input topic or not;
    - every partition of a configured input topic when the group is ``active`` (has members:
      it consumes them all, committed yet or not), or when it committed anything on that
      topic (a stopped group still owes its never-committed partitions).

    So a deleted group, or an empty one whose offsets expired, has no partitions: its series
    disappear rather than linger with their last values.
    """
    keys = {k for k in committed if k[1] < partition_counts.get(k[0], 0)}
    touched = {topic for topic, _ in keys}
    for topic in spec.topics:
        if topic in partition_counts and (active or topic in touched):
            keys.update((topic, p) for p in range(partition_counts[topic]))
    return sorted(keys)


def measure_group(source: OffsetsSource, spec: GroupSpec, counts: Mapping[str, int]) -> GroupLag:
    """Read one group's lag, with the timestamp of the oldest unconsumed record of every
    lagging partition. ``counts`` is ``source.partition_counts()``, read once per round."""
    state = source.group_state(spec.group)
    partitions = counted_partitions(spec, state.committed, counts, state.members > 0)
    if not partitions:
        return GroupLag(spec.group, state.members, [])
    earliest, latest = source.watermarks(partitions)
    rows = lag_rows(state.committed, earliest, latest)
    positions = {(r.topic, r.partition): r.next_offset for r in rows if r.lag > 0}
    stamps = source.timestamps(positions) if positions else {}
    rows = [r._replace(oldest_ms=stamps.get((r.topic, r.partition))) for r in rows]
    return GroupLag(spec.group, state.members, rows)


def topic_lag_seconds(rows: Iterable[LagRow], now_ms: int) -> dict[str, float]:
    """Age in seconds of the oldest unconsumed record of each topic over its partitions: 0 when
    every partition is caught up; left out when lagging records' timestamps are unknown.
    Future timestamps (producer clock skew) count as 0."""
    lagging: dict[str, list[int | None]] = {}
    for row in rows:
        stamps = lagging.setdefault(row.topic, [])
        if row.lag > 0:
            stamps.append(row.oldest_ms)
    ages = {}
    for topic, stamps in lagging.items():
        known = [s for s in stamps if s is not None]
        if not stamps:
            ages[topic] = 0.0
        elif known:
            ages[topic] = max(0, now_ms - min(known)) / 1000
    return ages


def row_lag_seconds(row: LagRow, now_ms: int) -> float | None:
    """Age in seconds of the oldest unconsumed record of one partition (0 when caught up,
    None when unknown)."""
    if row.lag == 0:
        return 0.0
    return None if row.oldest_ms is None else max(0, now_ms - row.oldest_ms) / 1000


class KafkaOffsetsSource:
    """``OffsetsSource`` over confluent-kafka: an ``AdminClient`` for metadata, group state and
    watermarks; a short-lived ``Consumer`` that assigns and seeks (it never joins a group nor
    commits) to read record timestamps. Every request waits at most ``timeout_s``."""

    def __init__(self, kafka: KafkaSettings, timeout_s: float = 10.0) -> None:
        self.kafka = kafka
        self.timeout_s = timeout_s
        self._admin = admin_client(kafka)

    def partition_counts(self) -> dict[str, int]:
        """Every existing topic (cluster name) and its partition count."""
        try:
            topics = self._admin.list_topics(timeout=self.timeout_s).topics
        except KafkaException as error:
            raise self._error("reading cluster metadata", error) from error
        return {name: len(meta.partitions) for name, meta in topics.items() if not meta.error}

    def group_state(self, group: str) -> GroupState:
        """Committed offsets (all topics) and member count; an unknown group has neither."""
        request = [ConsumerGroupTopicPartitions(group)]
        offsets = self._admin.list_consumer_group_offsets(request, request_timeout=self.timeout_s)
        described = self._admin.describe_consumer_groups([group], request_timeout=self.timeout_s)
        listed = self._result(offsets[group], f"listing offsets of group {group!r}")
        description = self._result(described[group], f"describing group {group!r}")
        committed = {(tp.topic, tp.partition): tp.offset for tp in listed.topic_partitions}
        return GroupState(committed, len(description.members))

    def watermarks(
        self, partitions: Sequence[Partition]
    ) -> tuple[dict[Partition, int], dict[Partition, int]]:
        """``(earliest, latest)`` offsets of ``partitions``."""
        return self._offsets(partitions, OffsetSpec.earliest()), self._offsets(
            partitions, OffsetSpec.latest()
        )

    def timestamps(self, positions: Mapping[Partition, int]) -> dict[Partition, int]:
        """Timestamp (epoch ms) of the first record at or after each position; partitions
        that returned nothing within ``timeout_s`` are left out."""
        # librdkafka insists on a group id; it is never joined nor committed to. Offset reset
        # is earliest: a record deleted meanwhile reads as the next oldest
        group = self.kafka.topic("feedline-lag-exporter")
        consumer = confluent_consumer(self.kafka, group, **{"fetch.wait.max.ms": 100})
        try:
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in positions.items()])
            return self._first_timestamps(consumer, positions)
        except KafkaException as error:
            raise self._error("reading record timestamps", error) from error
        finally:
            consumer.close()

    def _first_timestamps(
        self, consumer: Consumer, positions: Mapping[Partition, int]
    ) -> dict[Partition, int]:
        found: dict[Partition, int] = {}
        done: set[Partition] = set()
        deadline = time.monotonic() + self.timeout_s
        while len(done) < len(positions) and (left := deadline - time.monotonic()) > 0:
            for message in consumer.consume(len(positions), timeout=min(left, 0.5)):
                topic, partition, offset = message.topic(), message.partition(), message.offset()
                if message.error() or topic is None or partition is None or offset is None:
                    continue
                key = (topic, partition)
                if key in done or offset < positions.get(key, 0):
                    continue  # a record fetched before the seek took effect
                kind, ms = message.timestamp()
                if kind != TIMESTAMP_NOT_AVAILABLE:
                    found[key] = ms
                done.add(key)
                consumer.pause([TopicPartition(*key)])  # one record per partition is enough
        return found

    def _offsets(self, partitions: Sequence[Partition], spec: OffsetSpec) -> dict[Partition, int]:
        request = {TopicPartition(t, p): spec for t, p in partitions}
        futures = self._admin.list_offsets(request, request_timeout=self.timeout_s)
        return {
            (tp.topic, tp.partition): self._result(f, f"listing offsets of {tp.topic}").offset
            for tp, f in futures.items()
        }

    def _result(self, future: Any, what: str) -> Any:
        try:
            return future.result()
        except KafkaException as error:
            raise self._error(what, error) from error

    def _error(self, what: str, error: KafkaException) -> LagReadError:
        return LagReadError(
            f"{what} failed on {self.kafka.bootstrap_servers}: {error}; "
            "is the broker reachable and FEEDLINE_KAFKA_* right?"
        )


def consumer_group_lag(
    kafka: KafkaSettings, group: str, topics: Iterable[str], timeout_s: float = 10.0
) -> dict[tuple[str, int], int]:
    """Messages not yet committed by ``group`` on each partition of ``topics`` (cluster names).

    A partition the group never committed counts from its earliest offset.
    """
    source = KafkaOffsetsSource(kafka, timeout_s)
    counts = source.partition_counts()
    partitions = [(t, p) for t in topics for p in range(counts[t])]
    earliest, latest = source.watermarks(partitions)
    committed = source.group_state(group).committed
    return {(r.topic, r.partition): r.lag for r in lag_rows(committed, earliest, latest)}
