"""The index store: post and member vectors, applied in order, idempotent by version.

Rules (DESIGN.md "Semantics"):

* an update applies only if its version is newer than the one held (replays change nothing);
* a delete (tombstone) removes the post and is remembered, so a late insert of a deleted post
  is dropped;
* an update with the wrong dimension, non-finite values, or a model version other than the
  one this store serves raises ``InvalidUpdate`` (the caller dead-letters it) and never
  reaches the index.

Thread-safe: one lock serialises updates and searches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from index_store.errors import InvalidUpdate
from index_store.post_index import Hit, PostIndex
from index_store.tracking import FreshnessWindow
from schemas import AttrValue, EmbeddingUpdate, Entity

Outcome = Literal["applied", "stale", "dropped_deleted", "removed", "absent"]


@dataclass(frozen=True)
class PostRecord:
    """What the store knows about an indexed post besides its vector."""

    version: int
    attrs: dict[str, AttrValue]
    model_version: str
    prompt_version: str
    event_time_ms: int
    indexed_at_ms: int


@dataclass
class MemberRecord:
    """A member's current vector and where it came from."""

    vector: np.ndarray
    version: int
    prompt_version: str
    event_time_ms: int


@dataclass
class IndexStore:
    """Posts in a FAISS index, members in a dict, with versions and remembered deletes."""

    dim: int
    model_version: str
    posts: PostIndex = field(init=False)
    freshness: FreshnessWindow = field(default_factory=FreshnessWindow)

    def __post_init__(self) -> None:
        self.posts = PostIndex(self.dim)
        self._post_records: dict[str, PostRecord] = {}
        self._members: dict[str, MemberRecord] = {}
        self._deleted: set[str] = set()
        self._by_author: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def apply(
        self, entity: Entity, entity_id: str, update: EmbeddingUpdate | None, *, live: bool = True
    ) -> Outcome:
        """Apply one record of ``embeddings.<entity>s``; ``None`` is a tombstone.

        ``live=False`` (replaying history at start-up) skips freshness observations, which
        would measure the replay, not the pipeline.
        """
        if update is not None:
            self.validate(update, entity, entity_id)
        with self._lock:
            if update is None and entity == "post":
                return self._delete_post(entity_id)
            if update is None:
                return self._drop_member(entity_id)
            outcome = self._upsert_post(update) if entity == "post" else self._upsert_member(update)
        if outcome == "applied" and live:
            self.freshness.observe(entity, time.time() - update.event_time_ms / 1000)
        return outcome

    def validate(self, update: EmbeddingUpdate, entity: Entity, entity_id: str) -> None:
        """Raise ``InvalidUpdate`` unless the update fits this store."""
        if update.entity != entity or update.entity_id != entity_id:
            raise InvalidUpdate(
                "wrong_entity",
                f"record for {update.entity} {update.entity_id!r} arrived "
                f"keyed as {entity} {entity_id!r}",
            )
        if update.model_version != self.model_version:
            raise InvalidUpdate(
                "unknown_model_version",
                f"{entity_id}: model_version "
                f"{update.model_version!r}, this index serves {self.model_version!r}",
            )
        if update.dim != self.dim:
            raise InvalidUpdate(
                "dim_mismatch",
                f"{entity_id}: vector has dimension {update.dim}; this index holds {self.dim}",
            )
        if not np.isfinite(update.vector()).all():
            raise InvalidUpdate("non_finite", f"{entity_id}: vector holds NaN or infinity")

    def _upsert_post(self, update: EmbeddingUpdate) -> Outcome:
        post_id = update.entity_id
        if post_id in self._deleted:
            return "dropped_deleted"
        current = self._post_records.get(post_id)
        if current is not None and update.version <= current.version:
            return "stale"
        self.posts.upsert(post_id, update.vector())
        now_ms = int(time.time() * 1000)
        self._post_records[post_id] = PostRecord(
            update.version,
            dict(update.attrs),
            update.model_version,
            update.prompt_version,
            update.event_time_ms,
            now_ms,
        )
        author = update.attrs.get("author_id")
        if isinstance(author, str):
            self._by_author.setdefault(author, set()).add(post_id)
        return "applied"

    def _delete_post(self, post_id: str) -> Outcome:
        self._deleted.add(post_id)
        record = self._post_records.pop(post_id, None)
        if record is None:
            return "absent"
        self.posts.remove(post_id)
        author = record.attrs.get("author_id")
        if isinstance(author, str):
            self._by_author.get(author, set()).discard(post_id)
        return "removed"

    def _upsert_member(self, update: EmbeddingUpdate) -> Outcome:
        current = self._members.get(update.entity_id)
        if current is not None and update.version <= current.version:
            return "stale"
        self._members[update.entity_id] = MemberRecord(
            update.vector(), update.version, update.prompt_version, update.event_time_ms
        )
        return "applied"

    def _drop_member(self, member_id: str) -> Outcome:
        return "removed" if self._members.pop(member_id, None) else "absent"

    def member(self, member_id: str) -> MemberRecord | None:
        """The member's current record, or None if no embedding has arrived."""
        with self._lock:
            return self._members.get(member_id)

    def post(self, post_id: str) -> PostRecord | None:
        """The indexed post's record, or None if unknown or deleted."""
        with self._lock:
            return self._post_records.get(post_id)

    def is_deleted(self, post_id: str) -> bool:
        """Whether a delete of ``post_id`` has been applied."""
        with self._lock:
            return post_id in self._deleted

    def search(
        self,
        query: np.ndarray,
        k: int,
        exclude_authors: Iterable[str] = (),
        exclude_posts: Iterable[str] = (),
    ) -> list[tuple[Hit, PostRecord]]:
        """Top-``k`` posts for ``query``; posts by ``exclude_authors`` are filtered out first."""
        with self._lock:
            excluded = set(exclude_posts)
            for author in exclude_authors:
                excluded |= self._by_author.get(author, set())
            hits = self.posts.search(query, k, exclude=excluded)
            return [(hit, self._post_records[hit.post_id]) for hit in hits]

    def counts(self) -> dict[str, int]:
        """Vectors held per entity, and remembered deletes."""
        with self._lock:
            return {
                "posts": len(self.posts),
                "members": len(self._members),
                "deleted_posts": len(self._deleted),
            }
