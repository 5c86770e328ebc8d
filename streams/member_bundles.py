"""Engagements repartitioned to the member side travel in bundles, one record per partition.

The post side forwards every engagement to ``engagements.by-member``, keyed by member_id. Sent
one record each, the member side pays faust's whole per-record path (fetch, conductor,
stream, commit ledger) once per engagement and gets batches of one, so its write-behind
tables coalesce nothing. Instead, at the end of each post-side batch the forwarded records are
grouped by the partition their key hashes to (the same murmur2 partitioner a keyed send
uses, so every member's engagements still land in the one partition that holds its state)
and each group is sent as one record to that partition, in order. The member side splits a
bundle back into the records it was made of and handles them one by one, under the bundle's
offset: a bundle is committed, and replayed after a crash, as a whole.

Wire layout of a bundle: header ``feedline.bundle: 1``, key ``__bundle__``, value the
concatenation of ``len(key) key len(value) value`` for each record, lengths as 4-byte
big-endian unsigned integers. A group of one record, and any record whose partition is not
known yet (no metadata for the topic), is sent as it is: keyed, unbundled. Bundles stay under
``MAX_BUNDLE_BYTES`` (well below the broker's default 1 MB message limit).
"""

from __future__ import annotations

from collections.abc import Callable

from schemas import InvalidRecord
from streams.records import Incoming, Outgoing

BUNDLE_HEADER = "feedline.bundle"
BUNDLE_KEY = b"__bundle__"
MAX_BUNDLE_BYTES = 256 * 1024
_LENGTH = 4
PartitionOf = Callable[[bytes], int | None]
"""The partition a key hashes to on the bundled topic, or None while that is not known."""


def bundle_by_partition(
    records: list[Outgoing],
    topic: str,
    partition_of: PartitionOf,
    max_bytes: int = MAX_BUNDLE_BYTES,
) -> list[Outgoing]:
    """``records`` with those bound for ``topic`` (keyed, no explicit partition) bundled per
    partition; every other record as it was, first, in its order."""
    out: list[Outgoing] = []
    groups: dict[int, list[Outgoing]] = {}
    for record in records:
        if record.topic != topic or record.partition is not None or record.key is None:
            out.append(record)
            continue
        partition = partition_of(record.key)
        if partition is None:
            out.append(record)
        else:
            groups.setdefault(partition, []).append(record)
    for partition, group in groups.items():
        out.extend(_bundles(group, topic, partition, max_bytes))
    return out


def is_bundle(record: Incoming) -> bool:
    """Whether ``record`` is a bundle (``bundle_by_partition``)."""
    return any(name == BUNDLE_HEADER for name, _ in record.headers)


def unbundle(record: Incoming) -> list[Incoming]:
    """The records a bundle was made of, at the bundle's coordinates and timestamp, with its
    headers less the bundle's own. Raises ``InvalidRecord`` when the value is not a bundle."""
    data = record.value or b""
    headers = [(name, value) for name, value in record.headers if name != BUNDLE_HEADER]
    parts: list[Incoming] = []
    at, end = 0, len(data)
    while at < end:
        key, at = _field(data, at, record)
        value, at = _field(data, at, record)
        parts.append(
            Incoming(
                record.topic,
                record.partition,
                record.offset,
                key,
                value,
                headers,
                record.timestamp_ms,
            )
        )
    return parts


def _bundles(group: list[Outgoing], topic: str, partition: int, max_bytes: int) -> list[Outgoing]:
    if len(group) == 1:
        return group
    bundles: list[Outgoing] = []
    chunk: list[bytes] = []
    size = 0
    for record in group:
        key, value = record.key or b"", record.value or b""
        framed = b"".join(
            (len(key).to_bytes(_LENGTH, "big"), key, len(value).to_bytes(_LENGTH, "big"), value)
        )
        if chunk and size + len(framed) > max_bytes:
            bundles.append(_bundle(chunk, topic, partition))
            chunk, size = [], 0
        chunk.append(framed)
        size += len(framed)
    bundles.append(_bundle(chunk, topic, partition))
    return bundles


def _bundle(chunk: list[bytes], topic: str, partition: int) -> Outgoing:
    return Outgoing(topic, BUNDLE_KEY, b"".join(chunk), [(BUNDLE_HEADER, b"1")], partition)


def _field(data: bytes, at: int, record: Incoming) -> tuple[bytes, int]:
    start = at + _LENGTH
    if start > len(data):
        raise _malformed(record, f"a length is cut off at byte {at}")
    stop = start + int.from_bytes(data[at:start], "big")
    if stop > len(data):
        raise _malformed(record, f"a field at byte {start} runs past the end ({len(data)} bytes)")
    return data[start:stop], stop


def _malformed(record: Incoming, detail: str) -> InvalidRecord:
    return InvalidRecord(
        "malformed_bundle",
        f"{record.topic}[{record.partition}]@{record.offset} is not a valid bundle: {detail}",
    )
