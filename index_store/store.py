"""The index store: post and member vectors, applied in order, idempotent by version.

Rules (DESIGN.md "Semantics"):

* an update applies only if its version is newer than the one held (replays change nothing);
* a delete (tombstone) removes the post and is remembered, so a late insert of a deleted post
  is dropped;
* an update with the wrong dimension, non-finite values, or a model version other than the
  one this store serves is rejected with ``InvalidUpdate`` (the caller dead-letters it) and
  never reaches the index.

Updates are applied in batches: the version logic runs record by record, then the backend
gets one removal and one insertion per batch (FAISS removal from a flat index is a pass over
the whole index, so per-record removal would cap the apply rate).

Thread-safe: ``lock`` serialises batches, searches and snapshots.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from index_store.backends import VectorBackend, exact_subset_search, make_backend, omp_threads
from index_store.errors import InvalidUpdate
from index_store.filters import NO_FILTER, PostFilter
from index_store.id_map import IdMap
from index_store.pending import PendingVectors
from index_store.post_table import PostRecord, PostTable
from index_store.settings import IndexSettings
from index_store.tracking import FreshnessWindow, stage_seconds
from schemas import EmbeddingUpdate, Entity

Outcome = Literal["applied", "stale", "dropped_deleted", "removed", "absent"]


class Hit(NamedTuple):
    """One search result."""

    post_id: str
    score: float
    """Cosine similarity to the query, in [-1, 1]."""


class StoreUpdate(NamedTuple):
    """One record of ``embeddings.<entity>s``: ``update=None`` is a tombstone."""

    entity: Entity
    entity_id: str
    update: EmbeddingUpdate | None


@dataclass(frozen=True)
class MemberRecord:
    """A member's current vector and where it came from."""

    vector: np.ndarray
    version: int
    prompt_version: str
    event_time_ms: int
    model_version: str = ""
    updated_at_ms: int = 0


class IndexStore:
    """Posts in a kNN backend with columnar metadata, members in a dict, remembered deletes.

    Example::

        store = IndexStore(384, "all-MiniLM-L6-v2@d7fab4550a5e+pct")
        store.apply("post", "p1", update)
        store.search(query, k=10, flt=PostFilter(languages=frozenset({"en"})))
    """

    def __init__(
        self,
        dim: int,
        model_version: str,
        backend: VectorBackend | None = None,
        settings: IndexSettings | None = None,
    ) -> None:
        self.dim = dim
        self.model_version = model_version
        self.settings = settings or IndexSettings()
        self.backend = backend if backend is not None else make_backend(self.settings, dim)
        self.freshness = FreshnessWindow()
        self.table = PostTable()
        self.id_map = IdMap()
        self.members: dict[str, MemberRecord] = {}
        self.deleted: set[str] = set()
        self.lock = threading.Lock()
        self.search_threads = self.settings.search_threads or (
            1 if self.backend.name in ("ivf", "hnsw") else 0
        )
        """FAISS threads of one search (``IndexSettings.search_threads``; 0: FAISS's own)."""

    def apply(
        self, entity: Entity, entity_id: str, update: EmbeddingUpdate | None, *, live: bool = True
    ) -> Outcome:
        """Apply one record; raises ``InvalidUpdate`` for an update that must not apply."""
        [result] = self.apply_batch([StoreUpdate(entity, entity_id, update)], live=live)
        if isinstance(result, InvalidUpdate):
            raise result
        return result

    def apply_batch(
        self, records: Sequence[StoreUpdate], *, live: bool = True
    ) -> list[Outcome | InvalidUpdate]:
        """Apply records in order; each gets its outcome or the ``InvalidUpdate`` it raised.

        ``live=False`` (replaying history at start-up) skips freshness observations, which
        would measure the replay, not the pipeline.
        """
        results: list[Outcome | InvalidUpdate] = []
        pending = PendingVectors()
        now_ms = int(time.time() * 1000)
        with self.lock:
            for record in records:
                try:
                    results.append(self._apply_one(record, pending, now_ms))
                except InvalidUpdate as error:
                    results.append(error)
            pending.flush(self.backend)
        if live:
            self._observe_freshness(records, results)
        return results

    def _apply_one(self, record: StoreUpdate, pending: PendingVectors, now_ms: int) -> Outcome:
        entity, entity_id, update = record
        if update is None:
            if entity == "post":
                return self._delete_post(entity_id, pending)
            return "removed" if self.members.pop(entity_id, None) else "absent"
        self.validate(update, entity, entity_id)
        if entity == "post":
            return self._upsert_post(update, pending, now_ms)
        return self._upsert_member(update, now_ms)

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

    def _upsert_post(
        self, update: EmbeddingUpdate, pending: PendingVectors, now_ms: int
    ) -> Outcome:
        if update.entity_id in self.deleted:
            return "dropped_deleted"
        int_id = self.id_map.assign(update.entity_id)
        held = self.table.version_of(int_id)
        if held is not None and update.version <= held:
            return "stale"
        pending.touch(int_id, was_indexed=held is not None)
        pending.put(int_id, update.vector())
        self.table.put(int_id, update, now_ms)
        return "applied"

    def _delete_post(self, post_id: str, pending: PendingVectors) -> Outcome:
        self.deleted.add(post_id)
        int_id = self.id_map.get(post_id)
        if int_id is None or self.table.version_of(int_id) is None:
            return "absent"
        pending.touch(int_id, was_indexed=True)
        pending.drop(int_id)
        self.table.clear(int_id)
        return "removed"

    def _upsert_member(self, update: EmbeddingUpdate, now_ms: int) -> Outcome:
        current = self.members.get(update.entity_id)
        if current is not None and update.version <= current.version:
            return "stale"
        self.members[update.entity_id] = MemberRecord(
            update.vector(),
            update.version,
            update.prompt_version,
            update.event_time_ms,
            update.model_version,
            now_ms,
        )
        return "applied"

    def _observe_freshness(
        self, records: Sequence[StoreUpdate], results: Sequence[Outcome | InvalidUpdate]
    ) -> None:
        now = time.time()
        for record, result in zip(records, results, strict=True):
            if result == "applied" and record.update is not None:
                self.freshness.observe(record.entity, now - record.update.event_time_ms / 1000)
                self.freshness.observe_stages(record.entity, stage_seconds(record.update, now))

    def member(self, member_id: str) -> MemberRecord | None:
        """The member's current record, or None if no embedding has arrived."""
        with self.lock:
            return self.members.get(member_id)

    def post(self, post_id: str) -> PostRecord | None:
        """The indexed post's record, or None if unknown or deleted."""
        with self.lock:
            int_id = self.id_map.get(post_id)
            if int_id is None or self.table.version_of(int_id) is None:
                return None
            return self.table.record(int_id)

    def post_vectors(self, post_ids: Sequence[str]) -> tuple[np.ndarray, list[PostRecord | None]]:
        """Stored vectors (n, dim) float32 and records of ``post_ids``; a post that is not
        indexed (unknown or deleted) gets a zero row and None."""
        vectors = np.zeros((len(post_ids), self.dim), np.float32)
        with self.lock:
            int_ids = [self.id_map.get(p) for p in post_ids]
            live = [i is not None and self.table.version_of(i) is not None for i in int_ids]
            rows = [n for n, ok in enumerate(live) if ok]
            if rows:
                ids = np.array([int_ids[n] for n in rows], np.int64)
                vectors[rows] = self.backend.reconstruct(ids)
            records = [
                self.table.record(i) if ok and i is not None else None
                for i, ok in zip(int_ids, live, strict=True)
            ]
        return vectors, records

    def is_deleted(self, post_id: str) -> bool:
        """Whether a delete of ``post_id`` has been applied."""
        with self.lock:
            return post_id in self.deleted

    def search(
        self, query: np.ndarray, k: int, flt: PostFilter = NO_FILTER
    ) -> list[tuple[Hit, PostRecord]]:
        """Top-``k`` posts for ``query`` (dim,) among those passing ``flt`` (applied before
        top-k: ``k`` results whenever ``k`` posts pass)."""
        queries = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        with self.lock, omp_threads(self.search_threads):
            scores, ids = self._search(queries, k, flt)
            return [
                (Hit(self.id_map.name(int(i)), float(s)), self.table.record(int(i)))
                for s, i in zip(scores[0], ids[0], strict=True)
                if i >= 0
            ]

    def _search(
        self, queries: np.ndarray, k: int, flt: PostFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), both (B, k'), k' = min(k, eligible posts)."""
        allowed = None if flt.is_empty else self.table.mask(flt, self.id_map)
        eligible = self.table.count if allowed is None else int(allowed.sum())
        k = min(k, eligible)
        if k <= 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        if allowed is not None and self._small(eligible):
            return exact_subset_search(self.backend, np.flatnonzero(allowed), queries, k)
        scores, ids = self.backend.search(queries, k, allowed)
        if not self.backend.exact and bool((ids < 0).any()):
            # an approximate backend can miss allowed posts under a selective filter (or
            # tombstones): the exact scan of the eligible set keeps the k guarantee
            eligible_ids = np.flatnonzero(self.table.live if allowed is None else allowed)
            return exact_subset_search(self.backend, eligible_ids, queries, k)
        return scores, ids

    def _small(self, eligible: int) -> bool:
        """Whether ``eligible`` posts are few enough to gather and scan exactly."""
        limit = min(
            self.settings.subset_scan_max, self.settings.subset_scan_fraction * self.table.count
        )
        return eligible <= limit

    def maintain(self) -> bool:
        """Backend upkeep (IVF training, HNSW rebuild); True if it changed anything."""
        with self.lock:
            return self.backend.maintain()

    def counts(self) -> dict[str, int]:
        """Vectors held per entity, and remembered deletes."""
        with self.lock:
            return {
                "posts": self.table.count,
                "members": len(self.members),
                "deleted_posts": len(self.deleted),
            }
