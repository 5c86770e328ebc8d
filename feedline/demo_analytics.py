"""The demo's snapshot steps: restart the query service from its snapshot, then export the
snapshots and run the analysts' three DuckDB queries on the demo world."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from feedline.processes import RoleProcess
from index_store.analytics import (
    COUNTS_BY_MODEL_SQL,
    NEAREST_POSTS_SQL,
    TOP_DRIFT_SQL,
    export_snapshot,
    list_snapshot_ids,
    run_query,
)
from index_store.snapshots import SnapshotStore
from service.client import QueryClient


def restart_service(
    serve: RoleProcess, client: QueryClient, wait: Callable[[Callable[[], bool], str], None]
) -> tuple[float, str]:
    """Stop the service (it writes a final snapshot), start it again, and wait until ready.

    Returns the seconds from start to ready and how the index started (``restored`` when the
    snapshot was used).
    """
    serve.stop()
    started = time.monotonic()
    serve.start()
    wait(client.is_ready, "the restarted query service to be ready")
    return time.monotonic() - started, client.stats().start


def export_and_query(console: Console, snapshot_dir: Path, out_dir: Path, member_id: str) -> None:
    """Export every kept snapshot to ``out_dir`` and print the three analyst queries."""
    for snapshot in SnapshotStore(snapshot_dir, keep=1_000_000).list():
        export_snapshot(snapshot, out_dir)
    db = out_dir / "feedline.duckdb"
    ids = list_snapshot_ids(db)
    console.print(f"\n[bold]Analysts' DuckDB[/bold] ({db}; snapshots {', '.join(ids)})")
    nearest = run_query(db, NEAREST_POSTS_SQL, {"member_id": member_id, "k": 5})
    _table(
        console,
        f"posts nearest {member_id}",
        ["post_id", "similarity", "author", "format", "v"],
        nearest,
    )
    if len(ids) >= 2:
        drift = run_query(
            db, TOP_DRIFT_SQL, {"from_snapshot": ids[0], "to_snapshot": ids[-1], "k": 5}
        )
        _table(
            console,
            f"most drifted posts, {ids[0]} → {ids[-1]}",
            ["post_id", "cosine", "from v", "to v"],
            [r[:4] for r in drift],
        )
    counts = run_query(db, COUNTS_BY_MODEL_SQL)
    _table(
        console,
        "rows by snapshot and model_version",
        ["snapshot", "model_version", "posts", "members"],
        counts,
    )


def _table(
    console: Console, title: str, columns: list[str], rows: list[tuple[object, ...]]
) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
