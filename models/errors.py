"""Errors raised by model loading and inference."""

from schemas.errors import FeedlineError


class ModelError(FeedlineError):
    """Base class for errors in ``models``."""


class ModelLoadError(ModelError):
    """A model directory is missing, incomplete, or not a Hugging Face model."""
