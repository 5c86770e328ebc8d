"""The newest record of every entity in a compacted topic, by the index store's rules.

A rollout re-embeds only what the index would hold after applying every record in order:
the highest version per entity, nothing for a deleted post (a post tombstone is final, so a
late insert stays dropped), and for a member only what came after its last tombstone.

Example::

    newest = NewestPerEntity()
    for record, where in records:           # StoreUpdate, "topic[partition]@offset"
        newest.add(record, where)
    newest.tombstones(), newest.survivors()
"""

from __future__ import annotations

from dataclasses import dataclass

from index_store import StoreUpdate
from schemas import EmbeddingUpdate, Entity


@dataclass
class Survivor:
    """What the store would hold for one entity after applying its records in order."""

    deleted: bool = False
    update: EmbeddingUpdate | None = None
    where: str = ""


class NewestPerEntity:
    """Newest record per entity, with the store's rules: higher versions win, a post
    tombstone is final, a member tombstone clears what came before it."""

    def __init__(self) -> None:
        self.entities: dict[tuple[Entity, str], Survivor] = {}

    def add(self, record: StoreUpdate, where: str) -> None:
        survivor = self.entities.setdefault((record.entity, record.entity_id), Survivor())
        update = record.update
        if update is None:
            survivor.deleted, survivor.update, survivor.where = True, None, where
        elif record.entity == "post" and survivor.deleted:
            return
        elif survivor.update is None or update.version > survivor.update.version:
            survivor.update, survivor.where = update, where

    def tombstones(self) -> list[StoreUpdate]:
        """A tombstone per deleted entity (applied before any survivor)."""
        return [StoreUpdate(e, i, None) for (e, i), s in self.entities.items() if s.deleted]

    def survivors(self) -> list[tuple[StoreUpdate, str]]:
        """The newest update per entity, with where it was read."""
        return [
            (StoreUpdate(e, i, s.update), s.where)
            for (e, i), s in self.entities.items()
            if s.update is not None
        ]
