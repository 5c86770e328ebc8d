"""Errors raised by the kNN backends."""

from index_store.errors import IndexStoreError


class BackendError(IndexStoreError):
    """A backend was misused or cannot be built or loaded (unknown name, wrong dim, no device,
    an id that is not present, a damaged file)."""
