"""``index_store.snapshots.persistence``: a store written as a snapshot and restored is the
same store, on every backend; restored state keeps the id mapping and the remembered deletes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index_store import IndexSettings, IndexStore, StoreUpdate
from index_store.snapshots import Snapshot, SnapshotStore
from index_store.snapshots.persistence import NATIVE_FILE, capture, restore, write_snapshot
from schemas import EmbeddingUpdate, Entity

DIM = 16
MODEL = "test-model@1"
SETTINGS: dict[str, dict[str, Any]] = {
    "flat": {"backend": "flat"},
    "ivf": {"backend": "ivf", "ivf_nlist": 4, "ivf_train_size": 200},
    "hnsw": {"backend": "hnsw", "hnsw_m": 8},
    "torch": {"backend": "torch", "torch_device": "cpu", "torch_dtype": "float32"},
}


def update(
    entity_id: str, version: int = 1, attrs: dict[str, Any] | None = None, entity: Entity = "post"
) -> EmbeddingUpdate:
    seed = sum(entity_id.encode()) * 31 + version
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    i = int(entity_id[1:])
    default = {"author_id": f"a{i % 5}", "format": "video", "language": None, "created_at_ms": i}
    return EmbeddingUpdate(
        entity=entity,
        entity_id=entity_id,
        version=version,
        dim=DIM,
        vector_b64=EmbeddingUpdate.encode_vector(vector / np.linalg.norm(vector)),
        model_version=MODEL,
        prompt_version=f"{entity}-v{version}",
        attrs=default if attrs is None else attrs,
        event_time_ms=1_000 + i,
        prompted_at_ms=1,
        embedded_at_ms=1,
    )


def filled(settings: IndexSettings) -> IndexStore:
    store = IndexStore(DIM, MODEL, settings=settings)
    records = [StoreUpdate("post", f"p{i}", update(f"p{i}")) for i in range(300)]
    records += [StoreUpdate("post", f"p{i}", update(f"p{i}", 2)) for i in range(0, 300, 7)]
    records += [StoreUpdate("post", f"p{i}", None) for i in range(0, 300, 11)]
    records += [
        StoreUpdate("post", "p900", update("p900", attrs={"author_id": 7, "extra": 1.5})),
        StoreUpdate("post", "p901", update("p901", attrs={})),
        StoreUpdate("member", "m1", update("m1", 3, entity="member")),
        StoreUpdate("member", "m2", update("m2", entity="member")),
    ]
    store.apply_batch(records, live=False)
    return store


def snapshot_of(store: IndexStore, root: Path) -> Snapshot:
    offsets = {("embeddings.posts", 0): 321}
    image = capture(store, root)
    return write_snapshot(
        SnapshotStore(root, keep=2), image, model_version=MODEL, dim=DIM, offsets=offsets
    )


def answers(store: IndexStore) -> list[list[tuple[str, float, Any]]]:
    queries = np.random.default_rng(5).standard_normal((5, DIM)).astype(np.float32)
    return [
        [(hit.post_id, round(hit.score, 5), record) for hit, record in store.search(q, 25)]
        for q in queries
    ]


@pytest.mark.parametrize("backend", list(SETTINGS))
def test_round_trip_gives_the_same_store(backend: str, tmp_path: Path) -> None:
    settings = IndexSettings(**SETTINGS[backend])
    store = filled(settings)
    snapshot = snapshot_of(store, tmp_path)
    restored = restore(snapshot, MODEL, settings, DIM)
    assert restored.counts() == store.counts() == {"posts": 274, "members": 2, "deleted_posts": 28}
    assert answers(restored) == answers(store)
    assert restored.backend.name == backend
    for post_id in ("p1", "p7", "p900", "p901"):
        assert restored.post(post_id) == store.post(post_id)
    assert restored.post("p900").attrs == {"author_id": 7, "extra": 1.5}  # type: ignore[union-attr]
    assert restored.post("p901").attrs == {}  # type: ignore[union-attr]
    member, original = restored.member("m1"), store.member("m1")
    assert member is not None and original is not None
    assert np.array_equal(member.vector, original.vector)
    assert (member.version, member.prompt_version) == (3, "member-v3")
    assert snapshot.manifest.offset_map() == {("embeddings.posts", 0): 321}
    assert (snapshot.extra_file(NATIVE_FILE) is not None) == (backend in ("ivf", "hnsw"))


def test_restored_store_keeps_ids_versions_and_deletes(tmp_path: Path) -> None:
    settings = IndexSettings(backend="flat")
    store = filled(settings)
    restored = restore(snapshot_of(store, tmp_path), MODEL, settings, DIM)
    assert restored.id_map.get("p5") == store.id_map.get("p5")
    assert restored.apply("post", "p11", update("p11", 5)) == "dropped_deleted"
    assert restored.apply("post", "p7", update("p7", 2)) == "stale"
    assert restored.apply("post", "p7", update("p7", 3)) == "applied"
    restored.apply("post", "p1000", update("p1000"))
    assert restored.id_map.get("p1000") == store.id_map.next_id  # ids are never reused


def test_empty_store_round_trips(tmp_path: Path) -> None:
    settings = IndexSettings(backend="flat")
    store = IndexStore(DIM, MODEL, settings=settings)
    restored = restore(snapshot_of(store, tmp_path), MODEL, settings, DIM)
    assert restored.counts() == {"posts": 0, "members": 0, "deleted_posts": 0}
    assert restored.search(np.ones(DIM, np.float32), 5) == []


def test_a_different_backend_rebuilds_from_the_embeddings(tmp_path: Path) -> None:
    hnsw = IndexSettings(**SETTINGS["hnsw"])
    store = filled(hnsw)
    snapshot = snapshot_of(store, tmp_path)
    flat = IndexSettings(backend="flat")
    restored = restore(snapshot, MODEL, flat, DIM)
    assert restored.backend.name == "flat"
    exact = restore(snapshot_of(filled(flat), tmp_path / "exact"), MODEL, flat, DIM)
    assert [[a[:2] for a in q] for q in answers(restored)] == [
        [a[:2] for a in q] for q in answers(exact)
    ]
