"""``FeedlineError``, the root of every error feedline raises on purpose, and the errors raised
while decoding records.

The root lives here, in the package every other one builds on, so that each package's
``errors`` module derives from it without importing a package above its own
(``tests/unit/test_import_layers.py``); ``feedline.errors`` re-exports it for users.
"""

from typing import Literal


class FeedlineError(Exception):
    """Base class: catch this to handle any feedline error.

    Each package defines specific subclasses in its own ``errors`` module; messages say what was
    wrong, with which input, and what to do about it.
    """


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
