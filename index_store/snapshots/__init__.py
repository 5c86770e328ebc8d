"""Index snapshots: the on-disk layout, its directory of atomic snapshots, and the store images
written to and restored from it.

- ``layout``: the Parquet schemas and ``SnapshotManifest`` (what a snapshot directory holds);
- ``files``, ``validation``, ``errors``: atomic file writes, table checks, ``SnapshotError``;
- ``store``: ``SnapshotStore`` (atomic writes, newest-valid reads, retention) and ``Snapshot``;
- ``persistence``: an ``IndexStore`` captured, written as a snapshot and restored from one;
- ``start_plan``: whether a starting index restores a snapshot or replays its topics.

Modules inside the package import each other by their full names, never through this one.
"""

from __future__ import annotations

from index_store.snapshots.errors import SnapshotError
from index_store.snapshots.store import Snapshot, SnapshotStore

__all__ = ["Snapshot", "SnapshotError", "SnapshotStore"]
