"""The index a starting service begins from: the newest usable snapshot, or an empty store.

``plan_start`` (``index_store.snapshots.start_plan``) decides: a snapshot of the same model
whose offsets are still in the topics is restored and the feed continues from its offsets;
otherwise (none, another model, offsets out of retention) the feed replays the topics into an
empty store, and the reason is counted in ``feedline_index_rebuilds_total``.

Example::

    opened = await open_index(settings, snapshots, metrics, "m@1", 384, beginnings, ends)
    reader.seek(opened.offsets)   # where the restored store continues; replay: beginnings
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import NamedTuple

from aiokafka import TopicPartition

from index_store import IndexSettings, IndexStore
from index_store.snapshots import SnapshotStore
from index_store.snapshots.persistence import restore
from index_store.snapshots.start_plan import StartPlan, plan_start
from service.feeds.feed_metrics import IndexMetrics

log = logging.getLogger(__name__)


class OpenedIndex(NamedTuple):
    """The store to serve, the plan that chose it, and where each partition continues."""

    store: IndexStore
    plan: StartPlan
    offsets: dict[TopicPartition, int]
    """The restored snapshot's offsets (empty on a replay: every partition from its
    beginning)."""


async def open_index(
    settings: IndexSettings,
    snapshots: SnapshotStore | None,
    metrics: IndexMetrics,
    model_version: str,
    dim: int,
    beginnings: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
) -> OpenedIndex:
    """Restore the newest usable snapshot of ``snapshots`` (``None``: snapshots disabled, so
    replay) or make an empty store; records the start duration."""
    latest = None if snapshots is None else await asyncio.to_thread(snapshots.latest)
    plan = plan_start(
        latest,
        model_version,
        dim,
        {(tp.topic, tp.partition): offset for tp, offset in beginnings.items()},
        {(tp.topic, tp.partition): offset for tp, offset in ends.items()},
    )
    if plan.replay:
        metrics.rebuilds.labels(plan.reason).inc()
        log.info("index rebuilds by replaying its topics (%s)", plan.reason)
    if plan.snapshot is None:
        metrics.start_duration.set(0)
        return OpenedIndex(IndexStore(dim, model_version, settings=settings), plan, {})
    started = time.perf_counter()
    store = await asyncio.to_thread(restore, plan.snapshot, model_version, settings, dim)
    elapsed = time.perf_counter() - started
    metrics.start_duration.set(elapsed)
    log.info(
        "index restored from snapshot %s in %.1f s: %s",
        plan.snapshot.manifest.snapshot_id,
        elapsed,
        store.counts(),
    )
    offsets = {
        TopicPartition(topic, partition): o for (topic, partition), o in plan.offsets.items()
    }
    return OpenedIndex(store, plan, offsets)
