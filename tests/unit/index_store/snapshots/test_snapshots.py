"""``index_store.snapshots.store``: atomic snapshot writes, newest-valid reads, retention."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import index_store.snapshots.files as snapshot_files
import index_store.snapshots.store as snapshots_module
from index_store.snapshots import Snapshot, SnapshotStore
from index_store.snapshots.errors import SnapshotError
from index_store.snapshots.layout import SnapshotManifest, members_schema
from tests.unit.index_store.snapshots.snapshot_tables import (
    DIM,
    MODEL,
    OFFSETS,
    deleted_table,
    members_table,
    posts_table,
    tables,
    unit_vectors,
    write,
)

REPO = Path(__file__).resolve().parents[4]


def temp_dirs(root: Path) -> list[Path]:
    return [path for path in root.iterdir() if path.name.startswith(".tmp-")]


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "snaps", keep=2)


# --- round trip --------------------------------------------------------------------------


def test_round_trip_keeps_tables_manifest_and_offsets(store: SnapshotStore) -> None:
    posts, members, deleted = tables()
    written = write(store, tables=(posts, members, deleted))
    latest = store.latest()
    assert latest is not None
    assert latest.manifest == written.manifest
    assert latest.posts().equals(posts)
    assert latest.members().equals(members)
    assert latest.deleted().equals(deleted)
    assert latest.manifest.offset_map() == OFFSETS
    assert latest.manifest.counts == {"posts": 5, "members": 2, "deleted_posts": 2}
    assert latest.path.name == f"snap-{latest.manifest.snapshot_id}"


def test_empty_tables_round_trip(store: SnapshotStore) -> None:
    empty = (
        posts_table([], np.zeros((0, DIM), np.float32)),
        members_table([], np.zeros((0, DIM), np.float32)),
        deleted_table([]),
    )
    snapshot = write(store, tables=empty, next_int_id=0, offsets={})
    assert snapshot.posts().num_rows == 0
    assert snapshot.posts().schema.equals(empty[0].schema)
    assert snapshot.manifest.offset_map() == {}


def test_manifest_is_json_listing_every_file_with_its_size(store: SnapshotStore) -> None:
    snapshot = write(store, extra_files={"index.faiss": lambda path: path.write_bytes(b"x" * 10)})
    raw = json.loads((snapshot.path / "manifest.json").read_text())
    assert raw["format_version"] == 1
    assert raw["offsets"] == {
        "embeddings.members": {"0": 3},
        "embeddings.posts": {"0": 120, "1": 7},
    }
    for name, size in raw["files"].items():
        assert (snapshot.path / name).stat().st_size == size
    assert set(raw["files"]) == {
        "posts.parquet",
        "members.parquet",
        "deleted.parquet",
        "index.faiss",
    }
    assert snapshot.extra_file("index.faiss") == snapshot.path / "index.faiss"
    assert snapshot.extra_file("other.bin") is None


def test_parquet_files_carry_dim_and_model_version(store: SnapshotStore) -> None:
    snapshot = write(store)
    for name in ("posts.parquet", "members.parquet", "deleted.parquet"):
        metadata = pq.read_schema(snapshot.path / name).metadata
        assert metadata[b"embedding_dim"] == b"8"
        assert metadata[b"model_version"] == MODEL.encode()


def test_snapshot_ids_sort_by_sequence(store: SnapshotStore) -> None:
    ids = [write(store).manifest.snapshot_id for _ in range(3)]
    assert ids == sorted(ids)
    assert [int(i.split("-")[0]) for i in ids] == [1, 2, 3]
    with pytest.raises(ValueError, match="snapshot_id"):
        SnapshotManifest.model_validate({**write(store).manifest.model_dump(), "sequence": 9})


def test_columns_in_another_order_are_accepted(store: SnapshotStore) -> None:
    posts, members, deleted = tables()
    shuffled = posts.select(list(reversed(posts.column_names)))
    snapshot = write(store, tables=(shuffled, members, deleted))
    assert snapshot.posts().equals(posts)


# --- retention ---------------------------------------------------------------------------


def test_retention_keeps_the_newest_k(store: SnapshotStore) -> None:
    for seed in range(5):
        write(store, seed=seed)
    kept = store.list()
    assert [snapshot.manifest.sequence for snapshot in kept] == [4, 5]
    assert sorted(path.name for path in store.root.iterdir()) == [s.path.name for s in kept]


def test_latest_is_none_before_the_first_snapshot(store: SnapshotStore) -> None:
    assert store.latest() is None
    assert store.list() == []


# --- crashes -----------------------------------------------------------------------------


def assert_previous_survives(store: SnapshotStore, previous: Snapshot) -> None:
    latest = store.latest()
    assert latest is not None
    assert latest.manifest == previous.manifest
    assert latest.posts().num_rows == 5


def test_failing_extra_writer_leaves_previous_snapshot(store: SnapshotStore) -> None:
    previous = write(store)

    def broken(path: Path) -> None:
        path.write_bytes(b"half an index")
        raise RuntimeError("faiss exploded")

    with pytest.raises(SnapshotError, match="faiss exploded"):
        write(store, extra_files={"index.faiss": broken})
    assert_previous_survives(store, previous)
    assert temp_dirs(store.root) == []


def test_failing_parquet_write_leaves_previous_snapshot(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = write(store)

    def disk_full(table: pa.Table, where: Any, **_: Any) -> None:
        Path(where).write_bytes(b"PAR1 truncated")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot_files.pq, "write_table", disk_full)
    with pytest.raises(SnapshotError, match="No space left"):
        write(store)
    monkeypatch.undo()
    assert_previous_survives(store, previous)


def test_failing_rename_leaves_previous_snapshot(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = write(store)

    def refuse(source: Any, target: Any) -> None:
        raise OSError(5, "I/O error", str(source))

    monkeypatch.setattr(snapshots_module.os, "rename", refuse)
    with pytest.raises(SnapshotError, match="I/O error"):
        write(store)
    monkeypatch.undo()
    assert_previous_survives(store, previous)
    assert write(store).manifest.sequence == 2


KILLED_WRITER = """
import sys, time
from pathlib import Path
from tests.unit.index_store.snapshots.snapshot_tables import write
from index_store.snapshots import SnapshotStore

def hang(path: Path) -> None:
    path.write_bytes(b"partial")
    print("writing", flush=True)
    time.sleep(60)

write(SnapshotStore(Path(sys.argv[1]), keep=2), extra_files={"index.faiss": hang})
"""


def test_writer_killed_mid_write_leaves_previous_and_next_write_sweeps(
    store: SnapshotStore,
) -> None:
    previous = write(store)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(store.root)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "writing\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    assert len(temp_dirs(store.root)) == 1
    assert_previous_survives(store, previous)
    assert write(store).manifest.sequence == 2
    assert temp_dirs(store.root) == []


def test_a_write_in_progress_is_neither_visible_nor_swept(tmp_path: Path) -> None:
    first, second = SnapshotStore(tmp_path, keep=3), SnapshotStore(tmp_path, keep=3)
    previous = write(first)
    started, release = threading.Event(), threading.Event()

    def slow(path: Path) -> None:
        path.write_bytes(b"index")
        started.set()
        release.wait(timeout=10)

    results: list[Snapshot] = []
    writers = [
        threading.Thread(target=lambda: results.append(write(first, extra_files={"i": slow}))),
        threading.Thread(target=lambda: results.append(write(second))),
    ]
    writers[0].start()
    assert started.wait(timeout=10)
    writers[1].start()  # waits for the first: one writer per root
    assert second.latest() == previous
    assert len(temp_dirs(tmp_path)) == 1
    release.set()
    for writer in writers:
        writer.join(timeout=10)
    assert sorted(snapshot.manifest.sequence for snapshot in results) == [2, 3]
    assert temp_dirs(tmp_path) == []


# --- damaged snapshots -------------------------------------------------------------------


def test_truncated_file_makes_latest_skip_the_snapshot(
    store: SnapshotStore, caplog: pytest.LogCaptureFixture
) -> None:
    previous = write(store)
    newest = write(store, seed=1)
    posts = newest.path / "posts.parquet"
    os.truncate(posts, posts.stat().st_size - 100)
    with caplog.at_level(logging.WARNING, logger="index_store.snapshots.store"):
        assert store.latest() == previous
    assert "posts.parquet has" in caplog.text
    assert store.list() == [previous]


@pytest.mark.parametrize("damage", ["manifest_garbage", "manifest_missing", "file_missing"])
def test_damaged_snapshot_is_skipped(store: SnapshotStore, damage: str) -> None:
    previous = write(store)
    newest = write(store, seed=1)
    if damage == "manifest_garbage":
        (newest.path / "manifest.json").write_text('{"format_version": 1, "snaps')
    elif damage == "manifest_missing":
        (newest.path / "manifest.json").unlink()
    else:
        (newest.path / "members.parquet").unlink()
    assert store.latest() == previous


def test_damaged_snapshots_do_not_count_towards_retention(store: SnapshotStore) -> None:
    write(store)
    damaged = write(store, seed=1)
    (damaged.path / "deleted.parquet").unlink()
    write(store, seed=2)
    assert [snapshot.manifest.sequence for snapshot in store.list()] == [1, 3]
    assert not damaged.path.exists()


# --- validation --------------------------------------------------------------------------


def with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def variable_lists(table: pa.Table) -> pa.Table:
    values = pa.array(table.column("embedding").to_pylist(), pa.list_(pa.float32()))
    return with_column(table, "embedding", values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (variable_lists, r"embedding: expected fixed_size_list<item: float>\[8\], got list"),
        (lambda t: t.drop_columns(["version"]), r"missing \['version'\]"),
        (lambda t: t.append_column("extra", pa.array([1] * t.num_rows)), r"unexpected \['extra'\]"),
        (
            lambda t: with_column(t, "version", pa.array([1, None, 1, 1, 1], pa.int64())),
            "non-nullable",
        ),
        (
            lambda t: with_column(t, "post_id", pa.array(["a", "a", "b", "c", "d"])),
            "duplicate post_id",
        ),
        (lambda t: with_column(t, "int_id", pa.array([0, 1, 2, 3, 100])), "not below next_int_id"),
    ],
)
def test_tables_that_do_not_match_the_schema_are_refused(
    store: SnapshotStore, change: Any, message: str
) -> None:
    posts, members, deleted = tables()
    with pytest.raises(SnapshotError, match=message):
        write(store, tables=(change(posts), members, deleted))
    assert store.latest() is None


def test_wrong_dimension_is_refused(store: SnapshotStore) -> None:
    posts, _, deleted = tables()
    members = members_table(["m0"], unit_vectors(1, DIM * 2))
    assert members.schema.equals(members_schema(DIM * 2))
    with pytest.raises(SnapshotError, match=r"members.parquet.*embedding: expected"):
        write(store, tables=(posts, members, deleted))


@pytest.mark.parametrize("name", ["posts.parquet", "manifest.json", "../escape", ".hidden"])
def test_reserved_extra_file_names_are_refused(store: SnapshotStore, name: str) -> None:
    with pytest.raises(SnapshotError, match="reserved or not a plain file name"):
        write(store, extra_files={name: lambda path: path.write_bytes(b"")})


def test_rows_of_another_model_are_refused(store: SnapshotStore) -> None:
    posts, _, deleted = tables()
    members = members_table(["m0"], unit_vectors(1, DIM), model_version="other@2")
    with pytest.raises(
        SnapshotError, match=r"members.parquet: rows carry model versions \['other@2'\]"
    ):
        write(store, tables=(posts, members, deleted))


def test_an_unwritable_root_raises_a_snapshot_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(SnapshotError, match="cannot create"):
        write(SnapshotStore(tmp_path / "file" / "snaps", keep=1))


def test_negative_offsets_are_refused(store: SnapshotStore) -> None:
    with pytest.raises(SnapshotError, match="non-negative"):
        write(store, offsets={("t", 0): -1})
