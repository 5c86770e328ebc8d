"""The retrieval index: kNN backends over post vectors, member vectors, versioned idempotent
updates, attribute pre-filters, snapshots and the analysts' export."""

from index_store.errors import IndexStoreError, InvalidUpdate, UpdateRejection
from index_store.filters import NO_FILTER, PostFilter
from index_store.post_table import PostRecord
from index_store.settings import BackendName, IndexSettings
from index_store.store import Hit, IndexStore, MemberRecord, Outcome, StoreUpdate
from index_store.tracking import FreshnessWindow

__all__ = [
    "NO_FILTER",
    "BackendName",
    "FreshnessWindow",
    "Hit",
    "IndexSettings",
    "IndexStore",
    "IndexStoreError",
    "InvalidUpdate",
    "MemberRecord",
    "Outcome",
    "PostFilter",
    "PostRecord",
    "StoreUpdate",
    "UpdateRejection",
]
