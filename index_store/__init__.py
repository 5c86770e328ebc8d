"""The retrieval index: kNN backends over post vectors, member vectors, versioned idempotent
updates, attribute pre-filters, snapshots and the analysts' export.

Names are imported on first use (PEP 562): ``index_store.settings`` or ``index_store.errors``
load without FAISS and numpy, so roles that only read index settings start sooner.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from index_store.errors import IndexStoreError, InvalidUpdate, UpdateRejection
    from index_store.filters import NO_FILTER, PostFilter
    from index_store.post_table import PostRecord
    from index_store.settings import BackendName, IndexSettings
    from index_store.store import Hit, IndexStore, MemberRecord, Outcome, StoreUpdate
    from index_store.tracking import FreshnessWindow

_HOMES = {
    "NO_FILTER": "index_store.filters",
    "BackendName": "index_store.settings",
    "FreshnessWindow": "index_store.tracking",
    "Hit": "index_store.store",
    "IndexSettings": "index_store.settings",
    "IndexStore": "index_store.store",
    "IndexStoreError": "index_store.errors",
    "InvalidUpdate": "index_store.errors",
    "MemberRecord": "index_store.store",
    "Outcome": "index_store.store",
    "PostFilter": "index_store.filters",
    "PostRecord": "index_store.post_table",
    "StoreUpdate": "index_store.store",
    "UpdateRejection": "index_store.errors",
}
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


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'index_store' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
