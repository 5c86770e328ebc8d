"""``streams.records``: header normalisation and conversion from aiokafka records."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from streams.records import Incoming, from_consumer_record, normalise_headers


def test_normalise_headers_accepts_none_list_tuple_and_dict() -> None:
    assert normalise_headers(None) == []
    assert normalise_headers([]) == []
    assert normalise_headers([("a", b"1"), ("b", b"")]) == [("a", b"1"), ("b", b"")]
    assert normalise_headers((("a", bytearray(b"1")),)) == [("a", b"1")]
    assert normalise_headers({"a": b"1", "b": b"2"}) == [("a", b"1"), ("b", b"2")]


def test_from_consumer_record() -> None:
    record = ConsumerRecord(
        topic="t.engagements",
        partition=2,
        offset=99,
        timestamp=1_700_000_000_123,
        timestamp_type=0,
        key=b"p1",
        value=b"{}",
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=2,
        headers=(("h", b"v"),),
    )
    assert from_consumer_record(record) == Incoming(
        "t.engagements", 2, 99, b"p1", b"{}", [("h", b"v")], 1_700_000_000_123
    )
    record.timestamp = -1  # no timestamp
    assert from_consumer_record(record).timestamp_ms is None
