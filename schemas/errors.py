"""Errors raised while decoding records."""

from typing import Literal

from feedline.errors import FeedlineError

InvalidReason = Literal[
    "malformed_json",
    "not_an_object",
    "schema_invalid",
    "unsupported_schema_version",
    "key_mismatch",
    "malformed_bundle",
]


class SchemaError(FeedlineError):
    """Base class for errors in ``schemas``."""


class InvalidRecord(SchemaError):
    """A record on the wire is not a valid instance of its schema.

    ``reason`` is a short, bounded code (a metric label and DLQ header); the message says what
    was wrong in words a producer can act on.
    """

    def __init__(self, reason: InvalidReason, message: str) -> None:
        super().__init__(message)
        self.reason: InvalidReason = reason
