"""``index_store.snapshots.start_plan``: restore from a snapshot only when its offsets are
still in the log and it was made by the same model; otherwise replay, with the reason."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from index_store.snapshots import Snapshot, SnapshotStore
from index_store.snapshots.layout import DELETED_SCHEMA, members_schema, posts_schema
from index_store.snapshots.start_plan import plan_start

DIM = 4
MODEL = "m@1"
T = "embeddings.posts"


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    return SnapshotStore(tmp_path, keep=1).write(
        posts_schema(DIM).empty_table(),
        members_schema(DIM).empty_table(),
        pa.table({"post_id": pa.array([], pa.string())}, schema=DELETED_SCHEMA),
        model_version=MODEL,
        embedding_dim=DIM,
        backend="flat",
        next_int_id=0,
        offsets={(T, 0): 100, (T, 1): 50, ("gone", 0): 7},
    )


def test_no_snapshot_replays() -> None:
    plan = plan_start(None, MODEL, DIM, {(T, 0): 0}, {(T, 0): 10})
    assert (plan.reason, plan.replay, plan.offsets) == ("no_snapshot", True, {})


def test_offsets_within_the_log_restore(snapshot: Snapshot) -> None:
    beginnings = {(T, 0): 0, (T, 1): 50, (T, 2): 0}
    ends = {(T, 0): 150, (T, 1): 50, (T, 2): 9}
    plan = plan_start(snapshot, MODEL, DIM, beginnings, ends)
    assert plan.reason == "restored" and plan.snapshot == snapshot and not plan.replay
    # partitions the snapshot never saw (added since) are absent, so they start at the beginning
    assert plan.offsets == {(T, 0): 100, (T, 1): 50}


@pytest.mark.parametrize(
    ("beginnings", "ends", "reason"),
    [
        ({(T, 0): 101, (T, 1): 0}, {(T, 0): 200, (T, 1): 60}, "offsets_out_of_retention"),
        ({(T, 0): 0, (T, 1): 0}, {(T, 0): 99, (T, 1): 60}, "offsets_past_end"),
    ],
)
def test_offsets_outside_the_log_replay(
    snapshot: Snapshot,
    beginnings: dict[tuple[str, int], int],
    ends: dict[tuple[str, int], int],
    reason: str,
) -> None:
    plan = plan_start(snapshot, MODEL, DIM, beginnings, ends)
    assert (plan.reason, plan.replay, plan.snapshot) == (reason, True, None)


@pytest.mark.parametrize(("model", "dim"), [("m@2", DIM), (MODEL, DIM + 1)])
def test_another_model_replays(snapshot: Snapshot, model: str, dim: int) -> None:
    plan = plan_start(snapshot, model, dim, {(T, 0): 0}, {(T, 0): 500})
    assert plan.reason == "model_version_changed" and plan.replay
