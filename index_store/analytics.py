"""Analysts' export: snapshots as immutable hive-partitioned Parquet, plus DuckDB views.

Layout under ``out_dir``::

    posts/model_version=<mv>/snapshot_id=<id>/part-0.parquet
    members/model_version=<mv>/snapshot_id=<id>/part-0.parquet
    feedline.duckdb     views over every exported snapshot (rebuilt by each export)

``<mv>`` is percent-encoded (every byte but ``A-Za-z0-9-._~``), which DuckDB and pyarrow decode
back exactly: ``all-MiniLM-L6-v2@d7fab4550a5e+pct`` is stored as
``all-MiniLM-L6-v2%40d7fab4550a5e%2Bpct``. Partition values are read as VARCHAR (autocast
would turn a model version such as ``12`` into a number). Rows keep the snapshot's columns
(``model_version`` and ``snapshot_id`` come from the path) plus ``embedding_dim`` and
``snapshot_at_ms``.

Views (absolute paths: after moving ``out_dir``, call ``refresh_views(new_out_dir)``):

* ``posts_raw`` / ``members_raw``: every exported row, ``embedding`` as ``FLOAT[]``;
* ``posts`` / ``members``: rows whose ``embedding_dim`` is D of the newest snapshot, with
  ``embedding`` cast to ``FLOAT[D]`` (Parquet loses the fixed length; ``array_*`` need it);
* ``latest_posts`` / ``latest_members``: the newest snapshot only;
* table ``snapshots``: one row per exported snapshot (id, model, dim, time, counts, offsets).

Example::

    export_snapshot(SnapshotStore(root, keep=3).latest(), Path("analytics"))
    run_query(Path("analytics/feedline.duckdb"), NEAREST_POSTS_SQL, {"member_id": "m1", "k": 10})
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from index_store.snapshots.errors import SnapshotError
from index_store.snapshots.files import fsync_dir, write_parquet
from index_store.snapshots.layout import SnapshotManifest, file_metadata
from index_store.snapshots.store import Snapshot

DB_FILE = "feedline.duckdb"
STORAGE_VERSION = "v1.0.0"
"""DuckDB storage format the database is written in: every DuckDB from 1.0 on reads it (the
CLI 1.5.6 reads storage versions 64-68; the library's own default, 2.0's, is 69). The views
are SQL text, so the older format costs nothing; newer formats are only needed for features
a view-and-small-table database does not use."""
PART_FILE = "part-0.parquet"
MANIFEST_KEY = b"feedline.manifest"
Entity = Literal["posts", "members"]
ENTITIES: tuple[Entity, ...] = ("posts", "members")
SNAPSHOTS_TABLE_DDL = (
    "CREATE TABLE snapshots (snapshot_id VARCHAR PRIMARY KEY, sequence BIGINT, "
    "model_version VARCHAR, embedding_dim INTEGER, created_at_ms BIGINT, backend VARCHAR, "
    "counts JSON, offsets JSON)"
)

#: Posts nearest member ``$member_id`` in the newest snapshot, best first (``$k`` rows).
NEAREST_POSTS_SQL = """
SELECT p.post_id, array_cosine_similarity(p.embedding, m.embedding) AS similarity,
       p.author_id, p.format, p.version
FROM latest_posts AS p, (SELECT embedding FROM latest_members WHERE member_id = $member_id) AS m
ORDER BY similarity DESC, p.post_id
LIMIT $k
"""

_DRIFT_SELECT = """
SELECT a.post_id, array_cosine_similarity(a.embedding, b.embedding) AS cosine,
       a.version AS from_version, b.version AS to_version,
       a.prompt_version AS from_prompt_version, b.prompt_version AS to_prompt_version,
       a.model_version AS from_model_version, b.model_version AS to_model_version
FROM posts AS a JOIN posts AS b USING (post_id)
WHERE a.snapshot_id = $from_snapshot AND b.snapshot_id = $to_snapshot
"""

#: How post ``$post_id`` moved between two snapshots (cosine 1.0: unchanged); no row if the
#: post is missing from either.
EMBEDDING_DRIFT_SQL = _DRIFT_SELECT + "  AND a.post_id = $post_id\n"

#: The ``$k`` posts that moved most between ``$from_snapshot`` and ``$to_snapshot``.
TOP_DRIFT_SQL = _DRIFT_SELECT + "ORDER BY cosine ASC, a.post_id\nLIMIT $k\n"

#: Rows per snapshot and model version: ``(snapshot_id, model_version, posts, members)``.
COUNTS_BY_MODEL_SQL = """
SELECT snapshot_id, model_version, coalesce(p.n, 0) AS posts, coalesce(m.n, 0) AS members
FROM (SELECT snapshot_id, model_version, count(*) AS n FROM posts_raw GROUP BY ALL) AS p
FULL OUTER JOIN (SELECT snapshot_id, model_version, count(*) AS n FROM members_raw GROUP BY ALL)
    AS m USING (snapshot_id, model_version)
ORDER BY snapshot_id, model_version
"""


@dataclass(frozen=True)
class ExportResult:
    """What ``export_snapshot`` did: ``written`` lists the tables it wrote (empty: no-op)."""

    snapshot_id: str
    model_version: str
    written: tuple[Entity, ...]
    skipped: tuple[Entity, ...]
    partitions: dict[str, Path]
    db_path: Path

    @property
    def already_exported(self) -> bool:
        """True when every partition existed before, so nothing was written."""
        return not self.written


def partition_dir(out_dir: Path, entity: Entity, model_version: str, snapshot_id: str) -> Path:
    """``out_dir/<entity>/model_version=<percent-encoded mv>/snapshot_id=<id>``."""
    encoded = quote(model_version, safe="")
    return out_dir / entity / f"model_version={encoded}" / f"snapshot_id={snapshot_id}"


def export_snapshot(
    snapshot: Snapshot, out_dir: Path, storage_version: str = STORAGE_VERSION
) -> ExportResult:
    """Export ``snapshot`` (skipping partitions that exist), then rebuild the DuckDB views
    (in DuckDB's ``storage_version`` format, see ``STORAGE_VERSION``)."""
    out_dir = Path(out_dir).absolute()
    manifest = snapshot.manifest
    written: list[Entity] = []
    partitions: dict[str, Path] = {}
    for entity in ENTITIES:
        target = partition_dir(out_dir, entity, manifest.model_version, manifest.snapshot_id)
        partitions[entity] = target
        if not target.is_dir():
            table = _export_table(snapshot, entity)
            _write_partition(out_dir, target, table, manifest.embedding_dim)
            written.append(entity)
    db_path = refresh_views(out_dir, storage_version)
    return ExportResult(
        snapshot_id=manifest.snapshot_id,
        model_version=manifest.model_version,
        written=tuple(written),
        skipped=tuple(entity for entity in ENTITIES if entity not in written),
        partitions=partitions,
        db_path=db_path,
    )


def _export_table(snapshot: Snapshot, entity: Entity) -> pa.Table:
    manifest = snapshot.manifest
    table = snapshot.posts() if entity == "posts" else snapshot.members()
    models = pc.unique(table.column("model_version")).to_pylist()
    if any(model != manifest.model_version for model in models):
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id}: {entity} rows carry model versions {models}, "
            f"the manifest says {manifest.model_version!r}; cannot place them in one partition"
        )
    n = table.num_rows
    table = table.drop_columns(["model_version"])
    table = table.append_column(
        "embedding_dim", pa.repeat(pa.scalar(manifest.embedding_dim, pa.int32()), n)
    )
    table = table.append_column(
        "snapshot_at_ms", pa.repeat(pa.scalar(manifest.created_at_ms, pa.int64()), n)
    )
    metadata = file_metadata(manifest.embedding_dim, manifest.model_version)
    return table.replace_schema_metadata(
        metadata | {MANIFEST_KEY: manifest.model_dump_json().encode()}
    )


def _write_partition(out_dir: Path, target: Path, table: pa.Table, dim: int) -> None:
    """Write into a temp dir outside the partition tree, then rename it into place."""
    tmp = out_dir / ".tmp" / f"{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        write_parquet(tmp / PART_FILE, table, dim)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, target)
            fsync_dir(target.parent)
        except OSError as error:
            if not target.is_dir():  # else another exporter won the race: same content
                raise SnapshotError(f"cannot move export into {target}: {error}") from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def refresh_views(out_dir: Path, storage_version: str = STORAGE_VERSION) -> Path:
    """(Re)create ``out_dir/feedline.duckdb`` over every exported snapshot, in DuckDB's
    ``storage_version`` format (e.g. ``v1.0.0``); returns its path."""
    out_dir = Path(out_dir).absolute()
    exported = exported_manifests(out_dir)
    if not exported:
        raise SnapshotError(f"no exported snapshots under {out_dir}/posts; export one first")
    tmp = out_dir / f".tmp-{DB_FILE}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with _connect_for_writing(tmp, storage_version) as con:
            for statement in _view_statements(out_dir, exported[-1]):
                con.execute(statement)
            con.execute(SNAPSHOTS_TABLE_DDL)
            con.executemany(
                "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [_snapshot_row(manifest) for manifest in exported],
            )
        # Readers holding the old file keep it; new connections see the new one.
        os.replace(tmp, out_dir / DB_FILE)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    return out_dir / DB_FILE


def _connect_for_writing(path: Path, storage_version: str) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), config={"storage_compatibility_version": storage_version})
    except duckdb.Error as error:
        raise SnapshotError(
            f"cannot write DuckDB storage version {storage_version!r}: {error}"
        ) from error


def exported_manifests(out_dir: Path) -> list[SnapshotManifest]:
    """The manifest of every snapshot exported under ``out_dir``, oldest first."""
    found = []
    for part in Path(out_dir).glob(f"posts/model_version=*/snapshot_id=*/{PART_FILE}"):
        metadata = pq.read_schema(part).metadata or {}
        if MANIFEST_KEY not in metadata:
            raise SnapshotError(f"{part} lacks its snapshot manifest; not written by feedline?")
        found.append(SnapshotManifest.model_validate_json(metadata[MANIFEST_KEY]))
    return sorted(found, key=lambda manifest: manifest.snapshot_id)


def _snapshot_row(manifest: SnapshotManifest) -> tuple[object, ...]:
    return (
        manifest.snapshot_id,
        manifest.sequence,
        manifest.model_version,
        manifest.embedding_dim,
        manifest.created_at_ms,
        manifest.backend,
        json.dumps(manifest.counts),
        json.dumps(manifest.offsets),
    )


def _view_statements(out_dir: Path, newest: SnapshotManifest) -> list[str]:
    dim, latest = newest.embedding_dim, _sql_string(newest.snapshot_id)
    statements = []
    for entity in ENTITIES:
        glob = _sql_string(f"{out_dir}/{entity}/model_version=*/snapshot_id=*/{PART_FILE}")
        statements += [
            f"CREATE VIEW {entity}_raw AS SELECT * FROM read_parquet({glob}, "
            "hive_partitioning = true, union_by_name = true, "
            "hive_types = {'model_version': 'VARCHAR', 'snapshot_id': 'VARCHAR'})",
            f"CREATE VIEW {entity} AS SELECT * REPLACE (embedding::FLOAT[{dim}] AS embedding) "
            f"FROM {entity}_raw WHERE embedding_dim = {dim}",
            f"CREATE VIEW latest_{entity} AS SELECT * FROM {entity} WHERE snapshot_id = {latest}",
        ]
    return statements


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def run_query(db_path: Path, sql: str, params: Mapping[str, object] | None = None) -> list[tuple]:
    """Run ``sql`` with named ``$parameters`` on a read-only connection; all rows."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute(sql, dict(params or {})).fetchall()


def list_snapshot_ids(db_path: Path) -> list[str]:
    """Exported snapshot ids, oldest first."""
    rows = run_query(db_path, "SELECT snapshot_id FROM snapshots ORDER BY snapshot_id")
    return [str(row[0]) for row in rows]
