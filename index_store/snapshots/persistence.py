"""Between a live ``IndexStore`` and a snapshot: capture as Arrow tables, restore from them.

Capture copies everything under the store's lock (so the tables and the offsets the caller
pairs them with describe one moment), then the slow Parquet write runs without the lock.
Backends whose structure is costly to rebuild (IVF clustering, the HNSW graph) also save
their native file, so a restore loads it instead of re-adding a million vectors; the exact
backends are rebuilt from the embedding column, which is as fast as reading it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from index_store.backends import VectorBackend, load_backend, make_backend
from index_store.id_map import IdMap
from index_store.post_table import CODED_ATTRS, TIME_ABSENT, TIME_NONE, PostColumns
from index_store.settings import IndexSettings
from index_store.snapshots.layout import DELETED_SCHEMA, members_schema, posts_schema
from index_store.snapshots.store import Snapshot, SnapshotStore
from index_store.store import IndexStore, MemberRecord
from index_store.vocabulary import ABSENT

NATIVE_BACKENDS = frozenset({"ivf", "hnsw"})
NATIVE_FILE = "index.native"


@dataclass(frozen=True)
class StoreImage:
    """A consistent copy of a store, ready to be written as a snapshot."""

    posts: pa.Table
    members: pa.Table
    deleted: pa.Table
    next_int_id: int
    backend: str
    native_file: Path | None
    """The backend's native file, written at capture time (IVF, HNSW), else None."""


def capture(store: IndexStore, scratch_dir: Path) -> StoreImage:
    """Copy ``store`` into Arrow tables (and its native backend file into ``scratch_dir``)."""
    with store.lock:
        ids = store.table.live_ids()
        native = None
        if store.backend.name in NATIVE_BACKENDS:
            scratch_dir.mkdir(parents=True, exist_ok=True)
            native = scratch_dir / f".native-{uuid.uuid4().hex}"
            store.backend.save(native)
        return StoreImage(
            posts=_posts_table(store, ids),
            members=_members_table(store),
            deleted=pa.table({"post_id": sorted(store.deleted)}, schema=DELETED_SCHEMA),
            next_int_id=store.id_map.next_id,
            backend=store.backend.name,
            native_file=native,
        )


def write_snapshot(
    snapshots: SnapshotStore,
    image: StoreImage,
    *,
    model_version: str,
    dim: int,
    offsets: Mapping[tuple[str, int], int],
) -> Snapshot:
    """Write ``image`` with the ``offsets`` it covers as the newest snapshot; the native
    backend file (if any) is moved into it. The caller unlinks ``image.native_file`` if this
    raises."""
    native = image.native_file

    def move_native(path: Path) -> None:
        assert native is not None
        native.replace(path)

    return snapshots.write(
        image.posts,
        image.members,
        image.deleted,
        model_version=model_version,
        embedding_dim=dim,
        backend=image.backend,
        next_int_id=image.next_int_id,
        offsets=offsets,
        extra_files={NATIVE_FILE: move_native} if native is not None else {},
    )


def _fixed_size(vectors: np.ndarray, dim: int) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def _posts_table(store: IndexStore, ids: np.ndarray) -> pa.Table:
    table = store.table
    vectors = store.backend.reconstruct(ids) if len(ids) else np.empty((0, store.dim))
    created = table.created_at[ids]
    needs_json = table.created_at[ids] == TIME_ABSENT
    for name in CODED_ATTRS:
        needs_json |= table.codes[name][ids] == ABSENT
    needs_json |= np.isin(ids, np.fromiter(table.extra, dtype=np.int64, count=len(table.extra)))
    attrs_json: list[str | None] = [None] * len(ids)
    for row in np.flatnonzero(needs_json):
        attrs_json[row] = json.dumps(table.attrs(int(ids[row])), sort_keys=True)
    columns = {
        "post_id": store.id_map.names(ids),
        "int_id": ids,
        "embedding": _fixed_size(vectors, store.dim),
        "version": table.version[ids],
        **{name: table.vocab[name].values(table.codes[name][ids]) for name in CODED_ATTRS},
        "created_at_ms": pa.array(created, mask=created <= TIME_NONE),
        "attrs_json": attrs_json,
        "model_version": table.vocab["model"].values(table.codes["model"][ids]),
        "prompt_version": table.vocab["prompt"].values(table.codes["prompt"][ids]),
        "event_time_ms": table.event_time[ids],
        "updated_at_ms": table.indexed_at[ids],
    }
    return pa.table(columns, schema=posts_schema(store.dim))


def _members_table(store: IndexStore) -> pa.Table:
    members = sorted(store.members.items())
    vectors = np.stack([m.vector for _, m in members]) if members else np.empty((0, store.dim))
    columns = {
        "member_id": [member_id for member_id, _ in members],
        "embedding": _fixed_size(vectors, store.dim),
        "version": [m.version for _, m in members],
        "model_version": [m.model_version for _, m in members],
        "prompt_version": [m.prompt_version for _, m in members],
        "event_time_ms": [m.event_time_ms for _, m in members],
        "updated_at_ms": [m.updated_at_ms for _, m in members],
    }
    return pa.table(columns, schema=members_schema(store.dim))


def restore(
    snapshot: Snapshot, model_version: str, settings: IndexSettings, dim: int
) -> IndexStore:
    """A store holding exactly what ``snapshot`` holds."""
    posts = snapshot.posts()
    ids = posts["int_id"].to_numpy().astype(np.int64)
    store = IndexStore(dim, model_version, _backend(snapshot, settings, dim, posts), settings)
    store.id_map = IdMap.restore(posts["post_id"].to_pylist(), ids, snapshot.manifest.next_int_id)
    store.table.load(ids, _post_columns(posts, ids))
    store.deleted = set(snapshot.deleted()["post_id"].to_pylist())
    store.members = _members(snapshot.members(), dim)
    return store


def _vector_chunks(column: pa.ChunkedArray, dim: int) -> list[np.ndarray]:
    """(n_i, dim) float32 views of each chunk of a fixed-size-list column (no copy)."""
    return [
        chunk.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        for chunk in column.chunks
        if len(chunk)
    ]


def _backend(
    snapshot: Snapshot, settings: IndexSettings, dim: int, posts: pa.Table
) -> VectorBackend:
    native = snapshot.extra_file(NATIVE_FILE)
    fresh = make_backend(settings, dim)
    if native is not None and snapshot.manifest.backend == fresh.name:
        return load_backend(fresh.name, native, settings, dim)
    start = 0
    ids = posts["int_id"].to_numpy().astype(np.int64)
    for vectors in _vector_chunks(posts["embedding"], dim):
        fresh.add(ids[start : start + len(vectors)], vectors)  # chunk by chunk: no 1.5 GB copy
        start += len(vectors)
    return fresh


def _post_columns(posts: pa.Table, ids: np.ndarray) -> PostColumns:
    created = posts["created_at_ms"].combine_chunks()
    created_ms = created.fill_null(TIME_NONE).to_numpy(zero_copy_only=False)
    attrs = {
        int(ids[row]): json.loads(text)
        for row, text in enumerate(posts["attrs_json"].to_pylist())
        if text is not None
    }
    strings = {name: posts[name].combine_chunks() for name in CODED_ATTRS}
    strings["model"] = posts["model_version"].combine_chunks()
    strings["prompt"] = posts["prompt_version"].combine_chunks()
    return PostColumns(
        version=posts["version"].to_numpy(),
        event_time=posts["event_time_ms"].to_numpy(),
        indexed_at=posts["updated_at_ms"].to_numpy(),
        created_at=created_ms,
        strings=strings,
        attrs=attrs,
    )


def _members(members: pa.Table, dim: int) -> dict[str, MemberRecord]:
    chunks = _vector_chunks(members["embedding"], dim)
    vectors = np.concatenate(chunks) if chunks else np.empty((0, dim), np.float32)
    rows = zip(
        members["member_id"].to_pylist(),
        members["version"].to_pylist(),
        members["prompt_version"].to_pylist(),
        members["event_time_ms"].to_pylist(),
        members["model_version"].to_pylist(),
        members["updated_at_ms"].to_pylist(),
        strict=True,
    )
    return {
        member_id: MemberRecord(vectors[row].copy(), version, prompt, event_ms, model, updated)
        for row, (member_id, version, prompt, event_ms, model, updated) in enumerate(rows)
    }
