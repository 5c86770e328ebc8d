"""The root of every error feedline raises on purpose (defined in ``schemas.errors``, the ground
floor, so that no package imports upward to derive from it)."""

from schemas.errors import FeedlineError

__all__ = ["FeedlineError"]
