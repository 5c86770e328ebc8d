"""The retrieval index: FAISS over post vectors, member vectors, versioned idempotent updates."""

from index_store.errors import IndexStoreError, InvalidUpdate, UpdateRejection
from index_store.post_index import Hit, PostIndex
from index_store.store import IndexStore, MemberRecord, Outcome, PostRecord
from index_store.tracking import FreshnessWindow

__all__ = [
    "FreshnessWindow",
    "Hit",
    "IndexStore",
    "IndexStoreError",
    "InvalidUpdate",
    "MemberRecord",
    "Outcome",
    "PostIndex",
    "PostRecord",
    "UpdateRejection",
]
