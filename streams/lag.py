"""Consumer-group lag: end offset minus committed offset, per partition, and how old the
oldest unconsumed record is.

The arithmetic (``lag_rows``, ``counted_partitions``, ``topic_lag_seconds``) is pure; broker
reads go through an ``OffsetsSource`` (``KafkaOffsetsSource`` in production, a fake in unit
tests), so ``measure_group`` runs without a broker too.

Offsets: a partition the group never committed counts from its earliest offset; a committed
offset that fell out of retention (below the earliest) counts from the earliest too, since
that is where the consumer resumes; a committed offset past the end (impossible unless the
topic was recreated) counts as 0.

Broker restarts (issue 13): ``KafkaOffsetsSource`` keeps no client state a restart can leave
stale. A librdkafka ``AdminClient`` kept across a restart answered metadata again but failed
every ``list_consumer_group_offsets`` with ``_TIMED_OUT`` for as long as it lived (over two
minutes here; ten in the issue) while a fresh client read at once: its coordinator requests
stay stuck (cf. librdkafka PR #3847, "coord_req: re-query coordinator to avoid getting stuck",
open). Worse, librdkafka's coordinator admin calls kill the process around a restart, which
librdkafka 2.16.0 (bundled with confluent-kafka 2.16.1) still does:

- ``ListConsumerGroupOffsets`` answered ``NOT_COORDINATOR`` (what a restarted broker answers
  while it loads its groups) dereferences the consumer-group handle an admin client does not
  have: SIGSEGV in ``rd_kafka_cgrp_op`` from ``rd_kafka_handle_OffsetFetch`` (librdkafka
  #5040, open; confluent-kafka-javascript #374). ``bench/lag_recovery.py`` hit it here in two
  of three restarts with a fresh client per reading (the kept client timed out instead).
- ``DescribeConsumerGroups`` / ``ListConsumerGroupOffsets`` abort on a connection dropped
  mid-request (assertion ``rd_kafka_enq_once_del_source_return: eonce->refcnt > 0``:
  librdkafka #4605 and #3663, open; the use-after-free in ``rd_kafka_admin_coord_request`` is
  analysed in the open PR #5397).

A fresh client per call avoids neither, as both hit the request in flight. So:

- group state (committed offsets, members) is read with aiokafka, pure Python (a broker error
  is an exception, never an abort), through a fresh ``AIOKafkaClient`` per call. Not through
  ``AIOKafkaAdminClient.list_consumer_group_offsets``: it ignores the response's top-level
  error code (``COORDINATOR_LOAD_IN_PROGRESS`` just after a restart) and returns no offsets,
  which would read as "nothing committed"; here every error code is checked.
- cluster metadata, the first request of every reading, goes through aiokafka too: a refused
  connection fails at once, where librdkafka retries for its whole timeout, so a reading during
  an outage fits in Prometheus's scrape timeout and reports the broker down.
- watermarks stay on a confluent ``AdminClient`` (ListOffsets goes to partition leaders, not
  through the coordinator path above), dropped after any failed read so that the next reading
  builds a fresh one; record timestamps on a short-lived confluent ``Consumer``.

Example::

    consumer_group_lag(KafkaSettings(), "feedline-embed", ["prompts.posts"])
    # {("prompts.posts", 0): 0, ("prompts.posts", 1): 3, ...}
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import DescribeGroupsRequest
from aiokafka.protocol.commit import OffsetFetchRequest
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaException, TopicPartition
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.errors import StreamsError
from streams.kafka_clients import admin_client, confluent_consumer
from streams.settings import KafkaSettings

NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group committed nothing yet
GROUP_COORDINATOR = 0  # FindCoordinator's key type for a consumer group (1: a transaction)
# ListOffsets answers these for a partition whose leader moved, or of a topic just created
# (the broker has not applied its leadership yet); librdkafka's admin call does not retry them
LEADER_MOVED = {
    ConfluentError.NOT_LEADER_FOR_PARTITION,
    ConfluentError.LEADER_NOT_AVAILABLE,
    ConfluentError.UNKNOWN_TOPIC_OR_PART,
}
OFFSETS_ATTEMPTS, OFFSETS_RETRY_S = 3, 0.2
T = TypeVar("T")
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
    assigns: bool = False
    """The consumer assigns its partitions itself and never joins the group (the index feed):
    no members ever show that it runs, so every partition of its input topics counts from the
    first reading, committed or not."""


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


class DescribedMember(NamedTuple):
    """One member of a group as DescribeGroups reports it; ``assignment`` is the raw bytes of
    its assigned partitions (``streams.group_owners`` decodes them)."""

    member_id: str
    client_id: str
    host: str
    assignment: bytes


class GroupDescription(NamedTuple):
    """A group's state (``Stable``, ``PreparingRebalance``, ``Empty``, ``Dead``...), its
    assignment protocol and its members."""

    state: str
    protocol: str
    members: tuple[DescribedMember, ...]


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
      it consumes them all, committed yet or not), when it committed anything on that topic
      (a stopped group still owes its never-committed partitions), or always when the group
      ``assigns`` its partitions (it has no members to be active with; never committed: lag
      from the earliest offset, so an index that never snapshots still shows its lag).

    So a deleted group, or an empty one whose offsets expired, has no partitions: its series
    disappear rather than linger with their last values (an assigning group's stay).
    """
    keys = {k for k in committed if k[1] < partition_counts.get(k[0], 0)}
    touched = {topic for topic, _ in keys}
    for topic in spec.topics:
        if topic in partition_counts and (active or spec.assigns or topic in touched):
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
    """``OffsetsSource`` over a real cluster that recovers from broker restarts (see the module
    docstring for why each read uses the client it does):

    - metadata and group state: a fresh aiokafka ``AIOKafkaClient`` per call, on a private
      event loop;
    - watermarks: a confluent ``AdminClient`` (high watermark, as kafka_exporter reports),
      dropped after any failed read so that the next reading builds a fresh one;
    - record timestamps: a short-lived confluent ``Consumer`` that assigns and seeks (it never
      joins a group nor commits).

    Every call waits at most ``timeout_s``. Calls block: make them from a thread (the
    exporter's scrape threads, ``feedline lag``), never from a coroutine.
    """

    def __init__(self, kafka: KafkaSettings, timeout_s: float = 10.0) -> None:
        self.kafka = kafka
        self.timeout_s = timeout_s
        self._admin: AdminClient | None = None

    @property
    def admin(self) -> AdminClient:
        """The confluent admin client, built on first use and again after a failed read."""
        if self._admin is None:
            self._admin = admin_client(self.kafka)
        return self._admin

    def partition_counts(self) -> dict[str, int]:
        """Every existing topic (cluster name) and its partition count."""
        return self._run(self._partition_counts, "reading cluster metadata")

    def group_state(self, group: str) -> GroupState:
        """Committed offsets (all topics) and member count; an unknown group has neither."""
        return self._run(
            lambda client: self._group_state(client, group), f"reading group {group!r}"
        )

    def describe_group(self, group: str) -> GroupDescription:
        """The group's state and members with their assignments (an unknown group: ``Dead``,
        no members)."""

        async def describe(client: Any) -> GroupDescription:
            coordinator = await client.coordinator_lookup(GROUP_COORDINATOR, group)
            response = await client.send(coordinator, DescribeGroupsRequest([group]))
            return described_group(response, group)

        return self._run(describe, f"describing group {group!r}")

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
            raise self._failed("reading record timestamps", error) from error
        finally:
            consumer.close()

    async def _partition_counts(self, client: Any) -> dict[str, int]:
        cluster = await client.fetch_all_metadata()  # topics in error are left out
        return {topic: len(cluster.partitions_for_topic(topic)) for topic in cluster.topics()}

    async def _group_state(self, client: Any, group: str) -> GroupState:
        coordinator = await client.coordinator_lookup(GROUP_COORDINATOR, group)
        fetched = await client.send(coordinator, OffsetFetchRequest(group, None))
        described = await client.send(coordinator, DescribeGroupsRequest([group]))
        return GroupState(fetched_offsets(fetched, group), described_members(described, group))

    def _run(self, read: Callable[[Any], Awaitable[T]], what: str) -> T:
        """``read(client)`` with a fresh, bootstrapped aiokafka client, in ``timeout_s``."""

        async def session() -> T:
            client = AIOKafkaClient(
                **self.kafka.aiokafka_config(),
                client_id="feedline-lag-exporter",
                request_timeout_ms=int(self.timeout_s * 1000),
                retry_backoff_ms=100,
            )
            try:
                async with asyncio.timeout(self.timeout_s):
                    await client.bootstrap()
                    return await read(client)
            finally:
                await client.close()

        try:
            return asyncio.run(session())
        except (KafkaError, OSError) as error:  # TimeoutError is an OSError
            raise self._failed(what, error) from error

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
        topics = ", ".join(sorted({t for t, _ in partitions}))
        attempt = 1
        while True:
            try:
                futures = self.admin.list_offsets(request, request_timeout=self.timeout_s)
                return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
            except KafkaException as error:
                failure = self._failed(f"listing offsets of {topics}", error)
                if attempt == OFFSETS_ATTEMPTS or _error_code(error) not in LEADER_MOVED:
                    raise failure from error
            attempt += 1
            time.sleep(OFFSETS_RETRY_S)

    def _failed(self, what: str, error: Exception) -> LagReadError:
        """The error to raise for a failed read; the admin client goes with it (librdkafka can
        keep a dead connection's state for minutes: the next reading starts afresh)."""
        self._admin = None
        return LagReadError(
            f"{what} failed on {self.kafka.bootstrap_servers}: {error}; "
            "is the broker reachable and FEEDLINE_KAFKA_* right?"
        )


def fetched_offsets(response: Any, group: str) -> dict[Partition, int]:
    """The committed offsets in an OffsetFetch response (v2+ for all of a group's partitions:
    the top-level error code says whether the group could be read at all, then one code per
    partition). Raises the broker's error for any code but 0: "coordinator loading" must fail
    the reading, not read as "nothing committed"."""
    _raise_for(getattr(response, "error_code", 0), f"offsets of group {group!r}")
    committed = {}
    for topic, partitions in response.topics:
        for partition, offset, _metadata, error_code in partitions:
            _raise_for(error_code, f"offset of group {group!r} on {topic}[{partition}]")
            committed[(topic, partition)] = offset
    return committed


def described_members(response: Any, group: str) -> int:
    """Members of ``group`` in a DescribeGroups response (an unknown group is ``Dead`` with
    none); raises the broker's error for the group's error code."""
    return len(described_group(response, group).members)


def described_group(response: Any, group: str) -> GroupDescription:
    """``group`` in a DescribeGroups response; raises the broker's error for its error code."""
    for described in response.groups:
        error_code, name, state, _protocol_type, protocol, members = described[:6]
        if name == group:
            _raise_for(error_code, f"description of group {group!r}")
            return GroupDescription(
                state,
                protocol,
                tuple(DescribedMember(m[0], m[1], m[2], m[4]) for m in members),
            )
    raise KafkaError(f"the broker's description of groups left out {group!r}")


def _error_code(error: KafkaException) -> int | None:
    cause = error.args[0] if error.args else None
    return cause.code() if isinstance(cause, ConfluentError) else None


def _raise_for(error_code: int, what: str) -> None:
    if error_code:
        raise for_code(error_code)(what)


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
