"""``processors.newest_per_entity.NewestPerEntity``: the newest record of every entity, by the
index store's rules (and a property test that the two agree)."""

from __future__ import annotations

import random

import numpy as np

from index_store import IndexStore, StoreUpdate
from processors.newest_per_entity import NewestPerEntity
from schemas import EmbeddingUpdate, Entity
from tests.unit.index_store.index_updates import DIM, MODEL, update


def _update(entity_id: str, version: int) -> EmbeddingUpdate:
    return EmbeddingUpdate(
        entity="post" if entity_id.startswith("p") else "member",
        entity_id=entity_id,
        version=version,
        dim=2,
        vector_b64=EmbeddingUpdate.encode_vector(np.array([1.0, 0.0], np.float32)),
        model_version="m1",
        prompt_version="v",
        event_time_ms=1,
        prompted_at_ms=1,
        embedded_at_ms=1,
        text=f"{entity_id} v{version}",
    )


def _feed(*records: tuple[str, int | None]) -> NewestPerEntity:
    newest = NewestPerEntity()
    for offset, (entity_id, version) in enumerate(records):
        entity = "post" if entity_id.startswith("p") else "member"
        update = None if version is None else _update(entity_id, version)
        newest.add(StoreUpdate(entity, entity_id, update), f"t[0]@{offset}")
    return newest


def test_the_highest_version_survives_whatever_the_order() -> None:
    newest = _feed(("p1", 2), ("p1", 5), ("p1", 3), ("m1", 1))
    survivors = {
        r.entity_id: (r.update.version, where) for r, where in newest.survivors() if r.update
    }
    assert survivors == {"p1": (5, "t[0]@1"), "m1": (1, "t[0]@3")}
    assert newest.tombstones() == []


def test_a_deleted_post_stays_deleted_but_a_member_comes_back() -> None:
    newest = _feed(("p1", 1), ("p1", None), ("p1", 9), ("m1", 4), ("m1", None), ("m1", 2))
    assert {(r.entity, r.entity_id) for r in newest.tombstones()} == {
        ("post", "p1"),
        ("member", "m1"),
    }
    survivors = [(r.entity_id, r.update.version) for r, _ in newest.survivors() if r.update]
    assert survivors == [("m1", 2)]  # applied after the tombstone: the member is back at v2


def _held(store: IndexStore, ids: list[str]) -> dict[str, int | None]:
    """Entity → version the store holds (None: nothing), for posts ``p*`` and members ``m*``."""
    held: dict[str, int | None] = {}
    for entity_id in ids:
        record = store.post(entity_id) if entity_id[0] == "p" else store.member(entity_id)
        held[entity_id] = None if record is None else record.version
    return held


def test_the_store_and_newest_per_entity_agree_on_random_sequences() -> None:
    """A rollout re-embeds what ``NewestPerEntity`` keeps (tombstones, then survivors): on any
    sequence of updates and tombstones that must leave a store where applying every record in
    order leaves it. Both write the version and tombstone rules; this ties them together."""
    rng = random.Random(17)
    ids = ["p1", "p2", "p3", "m1", "m2", "m3"]
    for _ in range(300):
        in_order = IndexStore(dim=DIM, model_version=MODEL)
        newest = NewestPerEntity()
        for offset in range(rng.randrange(1, 25)):
            entity_id = rng.choice(ids)
            entity: Entity = "post" if entity_id[0] == "p" else "member"
            if rng.random() < 0.2:
                record = StoreUpdate(entity, entity_id, None)
            else:
                version = rng.randrange(1, 6)
                record = StoreUpdate(entity, entity_id, update(entity_id, version, entity=entity))
            in_order.apply(*record)
            newest.add(record, f"t[0]@{offset}")
        replayed = IndexStore(dim=DIM, model_version=MODEL)
        for tombstone in newest.tombstones():
            replayed.apply(*tombstone)
        for survivor, _ in newest.survivors():
            replayed.apply(*survivor)
        assert _held(replayed, ids) == _held(in_order, ids)
        kept = {
            entity_id: survivor.update.version
            for (_, entity_id), survivor in newest.entities.items()
            if survivor.update is not None
        }
        assert {i: kept.get(i) for i in ids} == _held(in_order, ids)
