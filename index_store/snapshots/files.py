"""Durable file writing for snapshots and exports: Parquet as snapshots store it, fsyncs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: Embedding bytes per Parquet row group (65,536 rows at 384-d): bounded memory, parallel reads.
ROW_GROUP_BYTES = 96 * 2**20
#: String columns with few distinct values, worth dictionary encoding.
LOW_CARDINALITY = frozenset({"author_id", "format", "language", "model_version", "prompt_version"})


def write_parquet(path: Path, table: pa.Table, embedding_dim: int) -> None:
    """Write ``table`` as snapshot files are written (compression, row groups), and fsync it."""
    # zstd-1 for ids and attributes; embeddings are near-incompressible floats, stored plain
    # and without statistics (which cost time and help no query).
    scalar = [name for name in table.column_names if name != "embedding"]
    pq.write_table(
        table,
        path,
        row_group_size=max(1024, ROW_GROUP_BYTES // (4 * embedding_dim)),
        compression={name: "zstd" for name in scalar} | {"embedding": "none"},
        compression_level={name: 1 for name in scalar},
        use_dictionary=[name for name in scalar if name in LOW_CARDINALITY],
        write_statistics=[name for name in scalar if name != "attrs_json"],
    )
    fsync_file(path)


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it."""
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the entries (creations, renames) of a directory durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree, whichever ``path`` is; absent is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
