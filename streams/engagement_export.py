"""Export the ``engagements`` topic to a Parquet file, for training the ranker on one's own logs.

The export is a bounded read: the end offset of every partition is observed once at start and
each partition is read from its beginning (earliest retained offset) up to that offset, so
records produced meanwhile are not waited for (the next export picks them up). No consumer
group is joined and no offset is committed. Records are decoded as the pipeline decodes them
(``schemas.decode``, Kafka key must equal ``post_id``); invalid ones are skipped and counted.
Rows are sorted by ``ts_ms`` (ties: partition, then offset), so they are held in memory
(Arrow columns, ~100 bytes per engagement) before the file is written atomically.

It uses confluent-kafka's synchronous ``Consumer``, as the other one-shot tools in ``streams``
do (``topics``, ``lag``): a batch job has no event loop to share, and librdkafka's
``enable.partition.eof`` reports the end of a partition even when it ends in a control record.

Example::

    export_engagements(KafkaSettings(), Path("engagements.parquet"))
    # ExportResult(rows=120345, skipped=2, partitions=4, end_offsets={0: 30101, ...})
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from index_store.snapshots.files import fsync_dir, fsync_file
from schemas import Engagement, InvalidRecord, decode
from schemas.engagement_table import engagements_to_table
from streams.errors import StreamsError, TopicError
from streams.kafka_clients import confluent_consumer
from streams.settings import KafkaSettings
from streams.topics import ENGAGEMENTS

log = logging.getLogger(__name__)

_BATCH = 10_000
_LOGGED_INVALID = 5  # per export: the first few bad records, each pointing at its offset
_TRANSIENT = frozenset(
    {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError._TIMED_OUT}
)


class ExportError(StreamsError):
    """The export could not read its topic to the end offsets (timeout, broker error)."""


class ExportResult(NamedTuple):
    """What ``export_engagements`` wrote."""

    rows: int
    """Engagements written to the file."""
    skipped: int
    """Records that failed to decode (malformed, invalid, key mismatch); not written."""
    partitions: int
    """Partitions of the topic."""
    end_offsets: dict[int, int]
    """Partition → the end offset observed at start: the export covers offsets below it."""


def export_engagements(
    kafka: KafkaSettings, path: Path, *, timeout_s: float = 60.0
) -> ExportResult:
    """Write every engagement on the topic, up to the end offsets at start, to ``path``.

    An empty topic writes a file with no rows and the schema. ``path`` is replaced atomically;
    on any error it is left as it was.

    Raises:
        TopicError: the topic does not exist.
        ExportError: the offsets could not be read (broker unreachable), the read did not
            reach the end offsets within ``timeout_s``, or the broker reported a fatal error.
    """
    deadline = time.monotonic() + timeout_s
    topic = kafka.topic(ENGAGEMENTS.name)
    consumer = confluent_consumer(
        kafka, f"feedline-export-{uuid.uuid4().hex}", **{"enable.partition.eof": True}
    )
    try:
        watermarks = _watermarks(consumer, topic, deadline)
        reader = _Reader(consumer, topic, watermarks)
        reader.read_until(deadline)
    finally:
        consumer.close()
    table = reader.sorted_table()
    _write_atomically(table, path)
    ends = {p: high for p, (_, high) in watermarks.items()}
    return ExportResult(table.num_rows, reader.skipped, len(watermarks), ends)


def _watermarks(consumer: Consumer, topic: str, deadline: float) -> dict[int, tuple[int, int]]:
    """Partition → (low, high) watermark offsets of ``topic``, as the broker has them now."""
    try:
        metadata = consumer.list_topics(topic, timeout=_left(deadline)).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise TopicError(
                f"topic {topic!r} does not exist; check FEEDLINE_KAFKA_TOPIC_PREFIX or run "
                "`feedline topics create`"
            )
        return {p: _watermark(consumer, topic, p, deadline) for p in sorted(metadata.partitions)}
    except KafkaException as error:
        raise ExportError(
            f"{topic}: could not read its offsets: {error}; is Kafka reachable at "
            "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS?"
        ) from error


def _watermark(consumer: Consumer, topic: str, partition: int, deadline: float) -> tuple[int, int]:
    while True:  # a new topic or a leader election answers "not leader" for a moment
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=_left(deadline), cached=False
            )
            return low, high
        except KafkaException as error:
            transient = error.args[0].retriable() or error.args[0].code() in _TRANSIENT
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


class _Reader:
    """Consumes assigned partitions up to their end offsets, decoding into Arrow batches."""

    def __init__(
        self, consumer: Consumer, topic: str, watermarks: dict[int, tuple[int, int]]
    ) -> None:
        self.consumer, self.topic = consumer, topic
        self.pending = {p: high for p, (low, high) in watermarks.items() if high > low}
        self.skipped = 0
        self.tables: list[pa.Table] = []
        self._events: list[Engagement] = []
        self._positions: list[tuple[int, int]] = []  # (partition, offset) of each event
        self._last_error: KafkaError | None = None

    def read_until(self, deadline: float) -> None:
        """Consume until every partition reached its end offset, or raise at ``deadline``."""
        self.consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self.pending]
        )
        while self.pending:
            if time.monotonic() > deadline:
                raise ExportError(
                    f"{self.topic}: partitions {self.pending} (partition: end offset) not read "
                    f"to the end before the timeout (last error: {self._last_error}); raise "
                    "--timeout-s or check the broker"
                )
            for message in self.consumer.consume(_BATCH, timeout=0.5):
                self._handle(message)
            self._flush()

    def _handle(self, message: Message) -> None:
        partition, offset, error = message.partition(), message.offset(), message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            if error.fatal():
                raise ExportError(f"{self.topic}[{partition}]: {error.str()}")
            self._last_error = error  # transient: librdkafka retries by itself
            return
        if partition not in self.pending or partition is None or offset is None:
            return  # a partition already read to its end offset
        end = self.pending[partition]
        if error is None and offset < end:
            self._decode(message, partition, offset)
        if error is not None or offset >= end - 1:  # end of partition, or its end offset
            del self.pending[partition]
            self.consumer.incremental_unassign([TopicPartition(self.topic, partition)])

    def _decode(self, message: Message, partition: int, offset: int) -> None:
        try:
            event = decode(Engagement, message.value(), key=message.key(), key_field="post_id")
        except InvalidRecord as error:
            self.skipped += 1
            if self.skipped <= _LOGGED_INVALID:
                log.warning(
                    'skipped invalid engagement partition="%s[%d]" offset="%d" reason=%s: %s',
                    self.topic, partition, offset, error.reason, error,
                )  # fmt: skip
            return
        self._events.append(event)
        self._positions.append((partition, offset))

    def _flush(self) -> None:
        if not self._events:
            return
        partitions, offsets = zip(*self._positions, strict=True)
        table = engagements_to_table(self._events)
        table = table.append_column("_partition", pa.array(partitions, pa.int32()))
        self.tables.append(table.append_column("_offset", pa.array(offsets, pa.int64())))
        self._events, self._positions = [], []

    def sorted_table(self) -> pa.Table:
        """Every decoded engagement, sorted by ``ts_ms``, then partition and offset."""
        if not self.tables:
            return engagements_to_table([])
        table = pa.concat_tables(self.tables).sort_by(
            [("ts_ms", "ascending"), ("_partition", "ascending"), ("_offset", "ascending")]
        )
        return table.drop_columns(["_partition", "_offset"])


def _write_atomically(table: pa.Table, path: Path) -> None:
    """Write ``table`` to a temporary file beside ``path``, fsync it, then rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        pq.write_table(table, tmp, compression="zstd")
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
