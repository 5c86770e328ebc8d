"""Framework-free record types the Kafka glue moves around."""

from __future__ import annotations

from typing import NamedTuple

from aiokafka.structs import ConsumerRecord

Headers = list[tuple[str, bytes]]


class Incoming(NamedTuple):
    """A consumed record, with the coordinates a dead letter needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int | None = None
    """The record's Kafka timestamp (producer create time or broker append time), if known."""


class Outgoing(NamedTuple):
    """A record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    partition: int | None = None
    """An explicit partition (ticks); None: the partitioner picks by key."""


def normalise_headers(headers: object) -> Headers:
    """Kafka clients hand headers over as a list of pairs, a dict or None: make it a list."""
    if not headers:
        return []
    if isinstance(headers, dict):
        return [(str(k), bytes(v)) for k, v in headers.items()]
    return [(str(k), bytes(v)) for k, v in headers]  # type: ignore[attr-defined]


def from_consumer_record(record: ConsumerRecord[bytes, bytes]) -> Incoming:
    """An ``Incoming`` from an aiokafka ``ConsumerRecord``."""
    return Incoming(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        normalise_headers(record.headers),
        record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None,
    )
