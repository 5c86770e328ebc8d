"""Index snapshots on a timer and at shutdown, and the offset commits they allow.

Partition/offset/commit behaviour: the feed calls ``maybe_begin`` between poll batches, when
every record up to ``positions`` is applied and nothing more is, so the captured index and the
offsets describe the same moment. The capture (a copy under the store's lock) runs before the
feed applies anything else; the Parquet write runs in the background while the feed goes on.
Offsets are committed to the index's consumer group only once a written snapshot covers them
(monitoring reads lag from that group; restores read offsets from the snapshot itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from index_store import IndexSettings, IndexStore
from index_store.snapshots import Snapshot, SnapshotStore
from index_store.snapshots.persistence import StoreImage, capture, write_snapshot
from service.feeds.feed_metrics import IndexMetrics
from service.feeds.topic_reader import Positions

log = logging.getLogger(__name__)

Commit = Callable[[Positions], Awaitable[None]]


class IndexCheckpointer:
    """Decides when to snapshot, writes snapshots, then commits the offsets they cover."""

    def __init__(
        self,
        settings: IndexSettings,
        snapshots: SnapshotStore,
        metrics: IndexMetrics,
        commit: Commit,
    ) -> None:
        self.settings = settings
        self.snapshots = snapshots
        self.metrics = metrics
        self._commit = commit
        self._last_at = time.monotonic()
        self._last_wall = time.time()
        self._covered: Positions | None = None
        self._writing: asyncio.Task[None] | None = None
        metrics.snapshot_age.set_function(lambda: time.time() - self._last_wall)

    def restored(self, snapshot: Snapshot, positions: Positions) -> None:
        """The index started from ``snapshot``: its offsets are already covered."""
        self._last_wall = snapshot.manifest.created_at_ms / 1000
        self._covered = dict(positions)

    def due(self) -> bool:
        """True when the interval has passed and no write is in flight."""
        in_flight = self._writing is not None and not self._writing.done()
        return (
            not in_flight and time.monotonic() - self._last_at >= self.settings.snapshot_interval_s
        )

    async def maybe_begin(self, store: IndexStore, positions: Positions) -> None:
        """If due, capture ``store`` now and write it in the background."""
        if not self.due():
            return
        self._last_at = time.monotonic()
        if positions == self._covered:
            return  # nothing applied since the last snapshot
        started = time.perf_counter()
        image = await asyncio.to_thread(capture, store, self.settings.snapshot_dir)
        self._writing = asyncio.create_task(self._write(store, image, dict(positions), started))

    async def final(self, store: IndexStore, positions: Positions) -> None:
        """At shutdown: finish any write in flight, then snapshot what is applied now."""
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await self._writing
        if positions == self._covered:
            return
        started = time.perf_counter()
        image = await asyncio.to_thread(capture, store, self.settings.snapshot_dir)
        await self._write(store, image, dict(positions), started)

    async def _write(
        self, store: IndexStore, image: StoreImage, positions: Positions, started: float
    ) -> None:
        try:
            snapshot = await asyncio.to_thread(self._write_files, store, image, positions)
            await self._commit(positions)
        except Exception:
            self.metrics.snapshots.labels("failed").inc()
            log.exception("index snapshot failed; the previous one stays the newest")
            return
        finally:
            if image.native_file is not None:
                image.native_file.unlink(missing_ok=True)
        self._covered = positions
        self._last_wall = time.time()
        self.metrics.snapshots.labels("written").inc()
        self.metrics.snapshot_duration.observe(time.perf_counter() - started)
        log.info("index snapshot %s: %s", snapshot.manifest.snapshot_id, snapshot.manifest.counts)

    def _write_files(self, store: IndexStore, image: StoreImage, positions: Positions) -> Snapshot:
        return write_snapshot(
            self.snapshots,
            image,
            model_version=store.model_version,
            dim=store.dim,
            offsets={(tp.topic, tp.partition): offset for tp, offset in positions.items()},
        )
