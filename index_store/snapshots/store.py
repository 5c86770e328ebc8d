"""Index snapshots on disk: atomic writes, newest-valid reads, retention.

Layout under ``root``::

    snap-00000042-20261125T043000Z/   one complete snapshot (never modified once renamed)
        posts.parquet members.parquet deleted.parquet [extra files, e.g. index.faiss]
        manifest.json                 written and fsynced last: lists every file and its size
    .tmp-<snapshot_id>-<pid>-<nonce>/ a snapshot being written, or left by a crashed writer

A snapshot becomes visible only by the rename of its complete, fsynced directory, so a crash
at any point leaves the previous snapshots usable. A directory whose manifest does not parse
or whose files are missing or of the wrong size is skipped with a warning. One process writes
a root at a time; any number may read it.

Example::

    store = SnapshotStore(Path(".feedline/snapshots"), keep=3)
    store.write(posts, members, deleted, model_version="m@1", embedding_dim=384,
                backend="flat", next_int_id=1001, offsets={("embeddings.posts", 0): 1234})
    snapshot = store.latest()  # None before the first write
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from index_store.snapshots.errors import SnapshotError
from index_store.snapshots.files import (
    fsync_dir,
    fsync_file,
    remove_path,
    write_parquet,
    write_synced,
)
from index_store.snapshots.layout import (
    DELETED_FILE,
    DELETED_SCHEMA,
    MANIFEST_FILE,
    MEMBERS_FILE,
    POSTS_FILE,
    TABLE_FILES,
    SnapshotManifest,
    encode_offsets,
    file_metadata,
    make_snapshot_id,
    members_schema,
    posts_schema,
)
from index_store.snapshots.validation import (
    check_extra_names,
    check_model_version,
    check_posts,
    conform,
)

log = logging.getLogger(__name__)

SNAP_PREFIX = "snap-"
TMP_PREFIX = ".tmp-"
#: Keys of ``SnapshotManifest.counts``, in the order of the table files.
COUNT_NAMES = ("posts", "members", "deleted_posts")
ExtraFileWriter = Callable[[Path], None]


@dataclass(frozen=True)
class Snapshot:
    """One complete snapshot directory and its manifest."""

    path: Path
    manifest: SnapshotManifest

    def posts(self) -> pa.Table:
        """The indexed posts (``posts_schema(embedding_dim)``), memory-mapped."""
        return self._read(POSTS_FILE, posts_schema(self.manifest.embedding_dim))

    def members(self) -> pa.Table:
        """The member embeddings (``members_schema(embedding_dim)``)."""
        return self._read(MEMBERS_FILE, members_schema(self.manifest.embedding_dim))

    def deleted(self) -> pa.Table:
        """The remembered deleted post ids (``DELETED_SCHEMA``)."""
        return self._read(DELETED_FILE, DELETED_SCHEMA)

    def extra_file(self, name: str) -> Path | None:
        """The path of an extra file written with the snapshot, or None if it has none."""
        path = self.path / name
        if name in TABLE_FILES or name not in self.manifest.files or not path.is_file():
            return None
        return path

    def _read(self, name: str, schema: pa.Schema) -> pa.Table:
        path = self.path / name
        try:
            table = pq.read_table(path, memory_map=True)
        except (OSError, pa.ArrowException) as error:
            raise SnapshotError(f"cannot read {path}: {error}") from error
        if not table.schema.equals(schema):
            raise SnapshotError(
                f"{path} has schema {table.schema}, expected {schema}; written by another "
                "format version? Take a new snapshot or replay from Kafka"
            )
        return table


class SnapshotStore:
    """Writes snapshots atomically under ``root`` and keeps the newest ``keep`` of them."""

    # Process-wide: writers of one root (even through several stores) take turns, and the
    # sweep of crashed writers' temp dirs never touches one that is being written.
    _live_tmp: ClassVar[set[Path]] = set()
    _live_lock: ClassVar[threading.Lock] = threading.Lock()
    _root_locks: ClassVar[dict[Path, threading.Lock]] = {}

    def __init__(self, root: Path, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.root = Path(root).absolute()
        self.keep = keep
        with self._live_lock:
            key = self.root.resolve()
            self._write_lock = self._root_locks.setdefault(key, threading.Lock())

    def write(
        self,
        posts: pa.Table,
        members: pa.Table,
        deleted: pa.Table,
        *,
        model_version: str,
        embedding_dim: int,
        backend: str,
        next_int_id: int,
        offsets: Mapping[tuple[str, int], int],
        extra_files: Mapping[str, ExtraFileWriter] | None = None,
    ) -> Snapshot:
        """Write a new snapshot, make it the newest, then apply retention.

        ``offsets`` are the next offsets to consume, per ``(topic, partition)``. Each
        ``extra_files[name]`` is called with the path it must write. Raises ``SnapshotError``
        (previous snapshots untouched) if a table does not match its schema or writing fails.
        """
        extras = dict(extra_files or {})
        tables = {
            POSTS_FILE: conform(posts, posts_schema(embedding_dim), POSTS_FILE),
            MEMBERS_FILE: conform(members, members_schema(embedding_dim), MEMBERS_FILE),
            DELETED_FILE: conform(deleted, DELETED_SCHEMA, DELETED_FILE),
        }
        check_posts(tables[POSTS_FILE], next_int_id)
        for name in (POSTS_FILE, MEMBERS_FILE):
            check_model_version(tables[name], model_version, name)
        check_extra_names(extras)
        if any(offset < 0 for offset in offsets.values()):
            raise SnapshotError(f"offsets must be non-negative next offsets, got {dict(offsets)}")
        with self._write_lock:
            sequence = max((seq for seq, _ in self._snapshot_dirs()), default=0) + 1
            created_at_ms = time.time_ns() // 1_000_000
            snapshot_id = make_snapshot_id(sequence, created_at_ms)
            tmp = self.root / f"{TMP_PREFIX}{snapshot_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            with self._claimed(tmp):
                files = _write_files(tmp, tables, (embedding_dim, model_version), extras)
                manifest = SnapshotManifest(
                    snapshot_id=snapshot_id,
                    sequence=sequence,
                    created_at_ms=created_at_ms,
                    model_version=model_version,
                    embedding_dim=embedding_dim,
                    backend=backend,
                    next_int_id=next_int_id,
                    offsets=encode_offsets(offsets),
                    counts={
                        name: table.num_rows
                        for name, table in zip(COUNT_NAMES, tables.values(), strict=True)
                    },
                    files=files,
                )
                final = self._publish(tmp, manifest)
            self._prune()
        log.info("snapshot %s written: %s", snapshot_id, manifest.counts)
        return Snapshot(final, manifest)

    def latest(self) -> Snapshot | None:
        """The newest valid snapshot, or None if there is none."""
        for _, path in sorted(self._snapshot_dirs(), reverse=True):
            snapshot = _load(path)
            if snapshot is not None:
                return snapshot
        return None

    def list(self) -> builtins.list[Snapshot]:
        """Every valid snapshot, oldest first."""
        loaded = (_load(path) for _, path in sorted(self._snapshot_dirs()))
        return [snapshot for snapshot in loaded if snapshot is not None]

    def _snapshot_dirs(self) -> builtins.list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            prefix = path.name[len(SNAP_PREFIX) :][:8]
            if path.name.startswith(SNAP_PREFIX) and prefix.isdigit() and path.is_dir():
                found.append((int(prefix), path))
        return found

    def _claimed(self, tmp: Path) -> _TempClaim:
        return _TempClaim(tmp, self._live_tmp, self._live_lock)

    def _publish(self, tmp: Path, manifest: SnapshotManifest) -> Path:
        write_synced(tmp / MANIFEST_FILE, manifest.model_dump_json(indent=2).encode())
        fsync_dir(tmp)
        final = self.root / f"{SNAP_PREFIX}{manifest.snapshot_id}"
        os.rename(tmp, final)
        fsync_dir(self.root)
        return final

    def _prune(self) -> None:
        """Apply retention; a failure here is logged, as the new snapshot is already safe."""
        try:
            self._drop_old()
            self._sweep_temp()
            fsync_dir(self.root)
        except OSError as error:
            log.warning(
                "snapshot retention in %s failed, will retry next time: %s", self.root, error
            )

    def _drop_old(self) -> None:
        """Drop all but the newest ``keep`` valid snapshots, and invalid ones."""
        kept = 0
        for _, path in sorted(self._snapshot_dirs(), reverse=True):
            if kept < self.keep and _load(path) is not None:
                kept += 1
                continue
            # Renamed out of sight first, so a crash mid-delete leaves only a temp dir.
            doomed = self.root / f"{TMP_PREFIX}del-{path.name}-{uuid.uuid4().hex[:8]}"
            os.rename(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            log.info("snapshot %s deleted (keeping the newest %d)", path.name, self.keep)

    def _sweep_temp(self) -> None:
        """Remove temp dirs of crashed writers (not those being written in this process)."""
        with self._live_lock:
            live = set(self._live_tmp)
        for path in self.root.iterdir():
            if path.name.startswith(TMP_PREFIX) and path not in live:
                log.warning("removing %s, left by an interrupted snapshot write", path)
                remove_path(path)


class _TempClaim:
    """Registers a temp dir as live while it is written; removes it if the write fails."""

    def __init__(self, path: Path, live: set[Path], lock: threading.Lock) -> None:
        self.path, self._live, self._lock = path, live, lock

    def __enter__(self) -> None:
        with self._lock:
            self._live.add(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir()
        except OSError as error:
            with self._lock:
                self._live.discard(self.path)
            raise SnapshotError(f"cannot create {self.path}: {error}") from error

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        with self._lock:
            self._live.discard(self.path)
        if error is None:
            return
        remove_path(self.path)
        if isinstance(error, Exception) and not isinstance(error, SnapshotError):
            raise SnapshotError(
                f"writing snapshot into {self.path} failed ({type(error).__name__}: {error}); "
                "the previous snapshots are untouched"
            ) from error


def _write_files(
    tmp: Path,
    tables: Mapping[str, pa.Table],
    metadata: tuple[int, str],
    extras: Mapping[str, ExtraFileWriter],
) -> dict[str, int]:
    """Write and fsync every file but the manifest; returns their sizes.

    ``metadata`` is ``(embedding_dim, model_version)``, stored in every Parquet file too.
    """
    dim, model_version = metadata
    kv = file_metadata(dim, model_version)
    for name, table in tables.items():
        write_parquet(tmp / name, table.replace_schema_metadata(kv), dim)
    for name, writer in extras.items():
        writer(tmp / name)
        if not (tmp / name).is_file():
            raise SnapshotError(f"the writer of extra file {name!r} did not create {tmp / name}")
    for name in extras:
        fsync_file(tmp / name)
    return {name: (tmp / name).stat().st_size for name in (*tables, *extras)}


def _load(path: Path) -> Snapshot | None:
    """The snapshot in ``path`` if it is complete, else None (with a warning saying why)."""
    try:
        manifest = SnapshotManifest.model_validate_json((path / MANIFEST_FILE).read_bytes())
    except (OSError, ValidationError) as error:
        log.warning("skipping snapshot %s: unreadable manifest (%s)", path, error)
        return None
    problems = [f"missing {name}" for name in TABLE_FILES if name not in manifest.files]
    if path.name != f"{SNAP_PREFIX}{manifest.snapshot_id}":
        problems.append(f"manifest names snapshot {manifest.snapshot_id}")
    for name, size in manifest.files.items():
        try:
            actual = (path / name).stat().st_size
        except OSError:
            problems.append(f"{name} is missing")
            continue
        if actual != size:
            problems.append(f"{name} has {actual} bytes, manifest says {size}")
    if problems:
        log.warning("skipping snapshot %s: %s", path, "; ".join(problems))
        return None
    return Snapshot(path, manifest)
