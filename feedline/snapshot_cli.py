"""``feedline snapshot …``: list the index's snapshots, export them for analysts, and run the
analysts' DuckDB queries.

Example::

    feedline snapshot export                       # newest snapshot → .feedline/analytics
    feedline snapshot query nearest --member m00001
    feedline snapshot query drift --top 5          # between the two newest exported snapshots
    feedline snapshot query counts
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from index_store.errors import IndexStoreError

snapshot_app = typer.Typer(no_args_is_help=True, help="Index snapshots and the analysts' export.")
query_app = typer.Typer(no_args_is_help=True, help="The analysts' queries on an export.")
snapshot_app.add_typer(query_app, name="query")

DEFAULT_EXPORT_DIR = Path(".feedline/analytics")
SnapshotDir = Annotated[
    Path | None,
    typer.Option("--dir", help="snapshot directory (default: FEEDLINE_INDEX_SNAPSHOT_DIR)"),
]
ExportDir = Annotated[Path, typer.Option("--out", help="export directory")]
console = Console(width=140)


def _snapshot_dir(directory: Path | None) -> Path:
    from index_store import IndexSettings

    return directory or IndexSettings().snapshot_dir


@snapshot_app.command("list")
def snapshot_list(directory: SnapshotDir = None) -> None:
    """The valid snapshots, oldest first, with their counts and offsets."""
    from index_store.snapshots import SnapshotStore

    root = _snapshot_dir(directory)
    rows = [
        (
            s.manifest.snapshot_id,
            s.manifest.model_version,
            s.manifest.backend,
            str(s.manifest.counts.get("posts", 0)),
            str(s.manifest.counts.get("members", 0)),
            str(sum(s.manifest.offset_map().values())),
        )
        for s in SnapshotStore(root, keep=1_000_000).list()
    ]
    _print(["snapshot", "model_version", "backend", "posts", "members", "offsets (sum)"], rows)


@snapshot_app.command("export")
def snapshot_export(
    directory: SnapshotDir = None,
    out: ExportDir = DEFAULT_EXPORT_DIR,
    all_snapshots: Annotated[bool, typer.Option("--all", help="every kept snapshot")] = False,
    duckdb_storage_version: Annotated[
        str | None,
        typer.Option(help="DuckDB storage format of the database (default v1.0.0: DuckDB >= 1.0)"),
    ] = None,
) -> None:
    """Export the newest (or every) snapshot as hive-partitioned Parquet + a DuckDB database."""
    from index_store.analytics import STORAGE_VERSION, export_snapshot
    from index_store.snapshots import SnapshotStore

    snapshots = SnapshotStore(_snapshot_dir(directory), keep=1_000_000).list()
    if not snapshots:
        raise IndexStoreError(f"no valid snapshot in {_snapshot_dir(directory)}")
    for snapshot in snapshots if all_snapshots else snapshots[-1:]:
        result = export_snapshot(snapshot, out, duckdb_storage_version or STORAGE_VERSION)
        done = "already exported" if result.already_exported else "exported"
        typer.echo(f"{result.snapshot_id}: {done}")
    typer.echo(f"duckdb database: {out / 'feedline.duckdb'}")


@query_app.command("nearest")
def query_nearest(
    member: Annotated[str, typer.Option(help="member id")],
    k: int = 10,
    out: ExportDir = DEFAULT_EXPORT_DIR,
) -> None:
    """Posts nearest a member in the newest exported snapshot (cosine similarity)."""
    from index_store.analytics import NEAREST_POSTS_SQL

    rows = _query(out, NEAREST_POSTS_SQL, {"member_id": member, "k": k})
    _print(["post_id", "similarity", "author_id", "format", "version"], rows)


@query_app.command("drift")
def query_drift(
    post: Annotated[str | None, typer.Option(help="one post; default: the top movers")] = None,
    from_snapshot: Annotated[str | None, typer.Option("--from")] = None,
    to_snapshot: Annotated[str | None, typer.Option("--to")] = None,
    top: int = 10,
    out: ExportDir = DEFAULT_EXPORT_DIR,
) -> None:
    """How post embeddings moved between two exported snapshots (default: the two newest)."""
    from index_store.analytics import EMBEDDING_DRIFT_SQL, TOP_DRIFT_SQL, list_snapshot_ids

    ids = list_snapshot_ids(_database(out))
    if (from_snapshot is None or to_snapshot is None) and len(ids) < 2:
        raise IndexStoreError(f"drift needs two exported snapshots; {out} has {len(ids)}")
    params: dict[str, object] = {
        "from_snapshot": from_snapshot or ids[-2],
        "to_snapshot": to_snapshot or ids[-1],
    }
    if post is not None:
        rows = _query(out, EMBEDDING_DRIFT_SQL, {**params, "post_id": post})
    else:
        rows = _query(out, TOP_DRIFT_SQL, {**params, "k": top})
    typer.echo(f"from {params['from_snapshot']} to {params['to_snapshot']}")
    _print(
        ["post_id", "cosine", "from_v", "to_v", "from_prompt", "to_prompt"], [r[:6] for r in rows]
    )


@query_app.command("counts")
def query_counts(out: ExportDir = DEFAULT_EXPORT_DIR) -> None:
    """Posts and members per exported snapshot and model version."""
    from index_store.analytics import COUNTS_BY_MODEL_SQL

    _print(["snapshot", "model_version", "posts", "members"], _query(out, COUNTS_BY_MODEL_SQL, {}))


def _database(out: Path) -> Path:
    db = out / "feedline.duckdb"
    if not db.exists():
        raise IndexStoreError(f"{db} does not exist; run `feedline snapshot export` first")
    return db


def _query(out: Path, sql: str, params: dict[str, object]) -> list[tuple[object, ...]]:
    from index_store.analytics import run_query

    return run_query(_database(out), sql, params)


def _print(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(*columns)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
