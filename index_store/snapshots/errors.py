"""Errors raised while writing, reading or exporting index snapshots."""

from index_store.errors import IndexStoreError


class SnapshotError(IndexStoreError):
    """A snapshot could not be written, read or exported; the message says which and why.

    A failed write leaves the previous snapshots untouched, so the caller may log, count and
    retry at the next interval (and must not commit offsets for it).
    """
