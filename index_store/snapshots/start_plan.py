"""Where the index starts: from the newest snapshot and its offsets, or by replaying.

A snapshot is usable only if it was made by the same model (same version, same dimension)
and every offset it saved still lies within its partition's log: an offset below the log
start fell out of retention (the records between were deleted, so seeking there would skip
them), and one past the end means the topic was recreated. Either way the index is rebuilt
by replaying from the beginning, and the reason is counted in
``feedline_index_rebuilds_total{reason}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from index_store.snapshots.store import Snapshot

Partition = tuple[str, int]
StartReason = Literal[
    "restored",
    "no_snapshot",
    "model_version_changed",
    "offsets_out_of_retention",
    "offsets_past_end",
]


@dataclass(frozen=True)
class StartPlan:
    """The snapshot to load (None: start empty) and the offset to start each partition at."""

    reason: StartReason
    snapshot: Snapshot | None = None
    offsets: dict[Partition, int] = field(default_factory=dict)
    """Start offsets; partitions not listed start at the beginning of their log."""

    @property
    def replay(self) -> bool:
        """True when the index is rebuilt from the beginning of its topics."""
        return self.snapshot is None


def plan_start(
    snapshot: Snapshot | None,
    model_version: str,
    dim: int,
    beginnings: Mapping[Partition, int],
    ends: Mapping[Partition, int],
) -> StartPlan:
    """Decide how to start given the newest snapshot and the partitions' log bounds."""
    if snapshot is None:
        return StartPlan("no_snapshot")
    manifest = snapshot.manifest
    if manifest.model_version != model_version or manifest.embedding_dim != dim:
        return StartPlan("model_version_changed")
    saved = {tp: offset for tp, offset in manifest.offset_map().items() if tp in ends}
    if any(offset < beginnings[tp] for tp, offset in saved.items()):
        return StartPlan("offsets_out_of_retention")
    if any(offset > ends[tp] for tp, offset in saved.items()):
        return StartPlan("offsets_past_end")
    return StartPlan("restored", snapshot, saved)
