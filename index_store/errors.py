"""Errors raised by the index store."""

from typing import Literal

from schemas.errors import FeedlineError

UpdateRejection = Literal["dim_mismatch", "non_finite", "unknown_model_version", "wrong_entity"]


class IndexStoreError(FeedlineError):
    """Base class for errors in ``index_store``."""


class InvalidUpdate(IndexStoreError):
    """An embedding update that must never reach the index (it goes to the DLQ instead)."""

    def __init__(self, reason: UpdateRejection, message: str) -> None:
        super().__init__(message)
        self.reason: UpdateRejection = reason
