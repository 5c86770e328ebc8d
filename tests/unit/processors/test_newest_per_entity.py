from __future__ import annotations

import numpy as np

from index_store import StoreUpdate
from processors.newest_per_entity import NewestPerEntity
from schemas import EmbeddingUpdate


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
