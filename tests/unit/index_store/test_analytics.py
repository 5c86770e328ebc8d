"""``index_store.analytics``: hive-partitioned export of snapshots and the analysts' queries."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from index_store.analytics import (
    COUNTS_BY_MODEL_SQL,
    EMBEDDING_DRIFT_SQL,
    NEAREST_POSTS_SQL,
    TOP_DRIFT_SQL,
    export_snapshot,
    list_snapshot_ids,
    partition_dir,
    refresh_views,
    run_query,
)
from index_store.snapshots import Snapshot, SnapshotStore
from index_store.snapshots.errors import SnapshotError
from tests.unit.index_store.snapshots.snapshot_tables import (
    MODEL,
    deleted_table,
    members_table,
    posts_table,
    unit_vectors,
)

DIM = 8
DRIFT_COSINE = 0.6


def orthogonal_unit(vector: np.ndarray, seed: int) -> np.ndarray:
    """A unit vector orthogonal to the unit ``vector``."""
    other = np.random.default_rng(seed).standard_normal(vector.shape[0]).astype(np.float32)
    other -= other.dot(vector) * vector
    return other / np.linalg.norm(other)


def write(
    store: SnapshotStore,
    ids: list[str],
    posts: np.ndarray,
    members: np.ndarray,
    *,
    versions: list[int] | None = None,
    model_version: str = MODEL,
) -> Snapshot:
    member_ids = [f"m{i}" for i in range(len(members))]
    return store.write(
        posts_table(ids, posts, versions=versions, model_version=model_version),
        members_table(member_ids, members, model_version=model_version),
        deleted_table(["gone"]),
        model_version=model_version,
        embedding_dim=posts.shape[1],
        backend="flat",
        next_int_id=len(ids),
        offsets={("embeddings.posts", 0): len(ids)},
    )


class TwoSnapshots:
    """Snapshot 1: posts p0..p4, members m0, m1. Snapshot 2: p1 drifted (cosine 0.6), p4
    deleted, p5 added, member m2 added; m0 points exactly at p3 (twice its length)."""

    def __init__(self, root: Path) -> None:
        store = SnapshotStore(root / "snaps", keep=5)
        self.posts1 = unit_vectors(5, DIM, seed=1)
        members1 = unit_vectors(2, DIM, seed=2)
        self.first = write(store, [f"p{i}" for i in range(5)], self.posts1, members1)
        old = self.posts1[1]
        drifted = DRIFT_COSINE * old + np.sqrt(1 - DRIFT_COSINE**2) * orthogonal_unit(old, 3)
        self.posts2 = np.vstack([self.posts1[:4], unit_vectors(1, DIM, seed=4)])
        self.posts2[1] = drifted
        self.ids2 = ["p0", "p1", "p2", "p3", "p5"]
        self.members2 = np.vstack([2 * self.posts1[3], members1[1], unit_vectors(1, DIM, seed=5)])
        self.second = write(store, self.ids2, self.posts2, self.members2, versions=[1, 2, 1, 1, 1])


@pytest.fixture
def two(tmp_path: Path) -> TwoSnapshots:
    return TwoSnapshots(tmp_path)


@pytest.fixture
def db(two: TwoSnapshots, tmp_path: Path) -> Path:
    export_snapshot(two.first, tmp_path / "out")
    return export_snapshot(two.second, tmp_path / "out").db_path


# --- export ------------------------------------------------------------------------------


def test_export_writes_hive_partitions_with_encoded_model_version(
    two: TwoSnapshots, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = export_snapshot(two.first, out)
    sid = two.first.manifest.snapshot_id
    expected = (
        out / "posts" / "model_version=all-MiniLM-L6-v2%40d7fab4550a5e%2Bpct" / f"snapshot_id={sid}"
    )
    assert result.partitions["posts"] == expected
    assert result.written == ("posts", "members")
    assert (expected / "part-0.parquet").is_file()
    assert (partition_dir(out, "members", MODEL, sid) / "part-0.parquet").is_file()
    assert result.db_path == out / "feedline.duckdb"
    part = pq.read_table(expected / "part-0.parquet")
    assert "model_version" not in part.column_names  # it lives in the path
    assert part.column("embedding_dim").to_pylist() == [DIM] * 5
    assert part.column("snapshot_at_ms").to_pylist() == [two.first.manifest.created_at_ms] * 5


def test_exporting_twice_is_a_no_op(two: TwoSnapshots, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_snapshot(two.first, out)
    part = partition_dir(out, "posts", MODEL, two.first.manifest.snapshot_id) / "part-0.parquet"
    before = part.stat()
    again = export_snapshot(two.first, out)
    assert again.already_exported
    assert again.skipped == ("posts", "members")
    after = part.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not any(path.name.startswith(".tmp") for path in out.iterdir() if path.is_file())
    assert list((out / ".tmp").iterdir()) == []


def test_hive_values_round_trip_exactly(db: Path) -> None:
    rows = run_query(db, "SELECT DISTINCT model_version, typeof(model_version) FROM posts_raw")
    assert rows == [(MODEL, "VARCHAR")]


def test_snapshot_list_and_table(db: Path, two: TwoSnapshots) -> None:
    ids = [two.first.manifest.snapshot_id, two.second.manifest.snapshot_id]
    assert list_snapshot_ids(db) == ids
    rows = run_query(db, "SELECT sequence, embedding_dim, counts->>'posts' FROM snapshots")
    assert rows == [(1, DIM, "5"), (2, DIM, "5")]


def test_connections_are_read_only(db: Path) -> None:
    with pytest.raises(duckdb.Error, match="read-only"):
        run_query(db, "CREATE TABLE scribble (x INTEGER)")


def test_refresh_without_exports_says_so(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="export one first"):
        refresh_views(tmp_path)


def duckdb_cli() -> Path:
    """The ``duckdb`` executable of the ``duckdb-cli`` package (a dev dependency): inside the
    package from 1.5 on, a script beside the interpreter before."""
    spec = importlib.util.find_spec("duckdb_cli")
    assert spec is not None and spec.submodule_search_locations, "make setup installs duckdb-cli"
    candidates = [
        Path(next(iter(spec.submodule_search_locations))) / "duckdb",
        Path(sys.executable).with_name("duckdb"),
    ]
    return next(path for path in candidates if path.is_file())


def cli_rows(db: Path, sql: str) -> list[str]:
    done = subprocess.run(
        [str(duckdb_cli()), "-readonly", "-csv", "-noheader", str(db), sql],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout.splitlines()


def test_the_duckdb_cli_opens_the_database_and_runs_the_queries(
    db: Path, two: TwoSnapshots
) -> None:
    """The newest DuckDB CLI on PyPI reads older storage versions than the library writes by
    default (1.5.6: 64-68, the 2.0 library: 69), so the export picks a format both read."""
    assert cli_rows(db, "SELECT version()") == ["v1.5.6"]  # the CLI the lock pins
    nearest = NEAREST_POSTS_SQL.replace("$member_id", "'m0'").replace("$k", "3")
    expected = run_query(db, NEAREST_POSTS_SQL, {"member_id": "m0", "k": 3})
    assert [row.split(",")[0] for row in cli_rows(db, nearest)] == [r[0] for r in expected]
    assert cli_rows(db, "SELECT count(*) FROM snapshots") == ["2"]
    assert cli_rows(db, "SELECT count(*) FROM latest_members") == [str(len(two.members2))]


def test_a_storage_version_duckdb_does_not_know_is_a_clear_error(
    two: TwoSnapshots, tmp_path: Path
) -> None:
    with pytest.raises(SnapshotError, match=r"storage version 'v0\.0\.1'"):
        export_snapshot(two.first, tmp_path / "out", storage_version="v0.0.1")


# --- the analysts' queries ---------------------------------------------------------------


def test_nearest_posts_of_a_member_in_the_latest_snapshot(db: Path, two: TwoSnapshots) -> None:
    rows = run_query(db, NEAREST_POSTS_SQL, {"member_id": "m0", "k": 3})
    member = two.members2[0] / np.linalg.norm(two.members2[0])
    cosines = two.posts2 @ member
    expected = [two.ids2[i] for i in np.argsort(-cosines)[:3]]
    assert [row[0] for row in rows] == expected
    assert rows[0][0] == "p3"
    assert rows[0][1] == pytest.approx(1.0, abs=1e-6)
    assert [row[1] for row in rows] == pytest.approx(sorted(cosines, reverse=True)[:3], abs=1e-5)


def test_drift_of_unchanged_and_changed_posts(db: Path, two: TwoSnapshots) -> None:
    span = {
        "from_snapshot": two.first.manifest.snapshot_id,
        "to_snapshot": two.second.manifest.snapshot_id,
    }
    unchanged = run_query(db, EMBEDDING_DRIFT_SQL, span | {"post_id": "p0"})
    changed = run_query(db, EMBEDDING_DRIFT_SQL, span | {"post_id": "p1"})
    assert unchanged[0][1] == pytest.approx(1.0, abs=1e-6)
    assert changed[0][1] == pytest.approx(DRIFT_COSINE, abs=1e-5)
    assert changed[0][2:6] == (1, 2, "post-simple-1", "post-simple-1")
    assert run_query(db, EMBEDDING_DRIFT_SQL, span | {"post_id": "p4"}) == []  # deleted
    top = run_query(db, TOP_DRIFT_SQL, span | {"k": 2})
    assert top[0][0] == "p1"
    assert top[1][1] == pytest.approx(1.0, abs=1e-6)


def test_counts_by_snapshot_and_model(db: Path, two: TwoSnapshots) -> None:
    assert run_query(db, COUNTS_BY_MODEL_SQL) == [
        (two.first.manifest.snapshot_id, MODEL, 5, 2),
        (two.second.manifest.snapshot_id, MODEL, 5, 3),
    ]


def test_a_new_dimension_and_a_numeric_model_version(
    db: Path, two: TwoSnapshots, tmp_path: Path
) -> None:
    store = SnapshotStore(tmp_path / "snaps", keep=5)
    third = write(
        store, ["q0", "q1"], unit_vectors(2, 4, 6), unit_vectors(1, 4, 7), model_version="12"
    )
    export_snapshot(third, tmp_path / "out")
    assert run_query(db, "SELECT count(*) FROM posts_raw") == [(12,)]
    # `posts` holds only rows of the newest dimension, cast to FLOAT[4] without errors.
    assert run_query(db, "SELECT DISTINCT typeof(embedding), model_version FROM posts") == [
        ("FLOAT[4]", "12")
    ]
    nearest = run_query(db, NEAREST_POSTS_SQL, {"member_id": "m0", "k": 5})
    assert sorted(row[0] for row in nearest) == ["q0", "q1"]
    assert run_query(db, COUNTS_BY_MODEL_SQL)[-1] == (third.manifest.snapshot_id, "12", 2, 1)
