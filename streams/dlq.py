"""Dead letters: the original record plus headers saying where it came from and why it failed.

Headers follow the Kafka Connect / KIP-1034 convention: ``feedline.error.topic``,
``.partition``, ``.offset``, ``.class``, ``.message``, plus ``.reason`` (a short code that is
also the ``reason`` label of ``feedline_dlq_messages_total``). The value and key are the
original bytes, untouched, so an operator can fix and replay the record.
"""

from __future__ import annotations

from streams.records import Headers, Incoming, Outgoing
from streams.topics import dlq_name

HEADER_PREFIX = "feedline.error."
MAX_MESSAGE_BYTES = 4_096


def failure_reason(error: BaseException) -> str:
    """The short code for a failure: its ``reason`` (schema or index errors), else its class."""
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) else type(error).__name__


def dead_letter(record: Incoming, error: BaseException) -> Outgoing:
    """The record bound for ``<record.topic>.dlq``: original key and bytes, error headers."""
    message = str(error).encode("utf-8", errors="replace")[:MAX_MESSAGE_BYTES]
    headers = [
        *record.headers,
        (HEADER_PREFIX + "topic", record.topic.encode()),
        (HEADER_PREFIX + "partition", str(record.partition).encode()),
        (HEADER_PREFIX + "offset", str(record.offset).encode()),
        (HEADER_PREFIX + "class", type(error).__name__.encode()),
        (HEADER_PREFIX + "reason", failure_reason(error).encode()),
        (HEADER_PREFIX + "message", message),
    ]
    return Outgoing(dlq_name(record.topic), record.key, record.value, headers)


def error_headers(headers: Headers) -> dict[str, str]:
    """The ``feedline.error.*`` headers of a dead letter, keyed without the prefix."""
    return {
        name.removeprefix(HEADER_PREFIX): value.decode("utf-8", errors="replace")
        for name, value in headers
        if name.startswith(HEADER_PREFIX)
    }
