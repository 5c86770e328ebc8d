"""``streams.dlq``: dead letters keep the original record and say why it failed."""

from __future__ import annotations

from index_store import InvalidUpdate
from schemas import InvalidRecord
from streams.dlq import HEADER_PREFIX, MAX_MESSAGE_BYTES, dead_letter, error_headers, failure_reason
from streams.records import Incoming


def incoming(**overrides: object) -> Incoming:
    fields: dict[str, object] = {
        "topic": "t.posts.created",
        "partition": 3,
        "offset": 1_234_567,
        "key": b"p1",
        "value": b'{"broken": ',
        "headers": [("traceparent", b"00-abc-01"), ("source", b"\xff\x00raw")],
    }
    return Incoming(**{**fields, **overrides})  # type: ignore[arg-type]


def test_dead_letter_keeps_key_value_and_headers_and_adds_error_headers() -> None:
    record = incoming()
    error = InvalidRecord("malformed_json", "value is not UTF-8 JSON: Expecting value")
    letter = dead_letter(record, error)
    assert letter.topic == "t.posts.created.dlq"
    assert letter.key == b"p1"
    assert letter.value == b'{"broken": '
    assert letter.headers == [
        ("traceparent", b"00-abc-01"),
        ("source", b"\xff\x00raw"),
        ("feedline.error.topic", b"t.posts.created"),
        ("feedline.error.partition", b"3"),
        ("feedline.error.offset", b"1234567"),
        ("feedline.error.class", b"InvalidRecord"),
        ("feedline.error.reason", b"malformed_json"),
        ("feedline.error.message", b"value is not UTF-8 JSON: Expecting value"),
    ]


def test_dead_letter_of_a_tombstone_without_key() -> None:
    letter = dead_letter(incoming(key=None, value=None, headers=[]), ValueError("boom"))
    assert (letter.key, letter.value) == (None, None)
    assert error_headers(letter.headers or []) == {
        "topic": "t.posts.created",
        "partition": "3",
        "offset": "1234567",
        "class": "ValueError",
        "reason": "ValueError",
        "message": "boom",
    }


def test_error_headers_round_trip_ignores_foreign_headers() -> None:
    letter = dead_letter(incoming(), InvalidUpdate("dim_mismatch", "p1: vector has 3 values"))
    assert error_headers(letter.headers or []) == {
        "topic": "t.posts.created",
        "partition": "3",
        "offset": "1234567",
        "class": "InvalidUpdate",
        "reason": "dim_mismatch",
        "message": "p1: vector has 3 values",
    }


def test_long_messages_are_cut_to_the_byte_limit() -> None:
    letter = dead_letter(incoming(), RuntimeError("é" * 10_000))
    message = dict(letter.headers or [])[HEADER_PREFIX + "message"]
    assert len(message) == MAX_MESSAGE_BYTES
    assert error_headers(letter.headers or [])["message"].startswith("é" * 2_000)


def test_failure_reason_uses_reason_else_class_name() -> None:
    assert failure_reason(InvalidRecord("key_mismatch", "x")) == "key_mismatch"
    assert failure_reason(KeyError("x")) == "KeyError"

    class Odd(Exception):
        reason = 42

    assert failure_reason(Odd()) == "Odd"
