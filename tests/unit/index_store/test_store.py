"""``index_store.store.IndexStore``: versioned, idempotent, validated updates and search."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import faiss
import numpy as np
import pytest

from index_store import IndexSettings, IndexStore, InvalidUpdate, PostFilter
from index_store.backends import FlatBackend, omp_threads
from schemas import EmbeddingUpdate, Entity, InvalidRecord, decode
from tests.unit.index_store.index_updates import DIM, MODEL, unit, update


@pytest.fixture
def store() -> IndexStore:
    return IndexStore(dim=DIM, model_version=MODEL)


def top_ids(store: IndexStore, query: np.ndarray, k: int, **kwargs: Any) -> list[str]:
    return [hit.post_id for hit, _ in store.search(query, k, **kwargs)]


# --- versions ------------------------------------------------------------------------------


def test_first_update_applies_and_is_searchable(store: IndexStore) -> None:
    vector = unit(1)
    assert store.apply("post", "p1", update("p1", 1, vector)) == "applied"
    [(hit, record)] = store.search(vector, 5)
    assert hit.post_id == "p1"
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    assert (record.version, record.model_version, record.prompt_version) == (
        1,
        MODEL,
        "post-simple-1",
    )
    assert record.attrs == {"author_id": "a1", "format": "text"}
    assert store.post("p1") == record
    assert store.counts() == {"posts": 1, "members": 0, "deleted_posts": 0}


def test_newer_version_replaces(store: IndexStore) -> None:
    store.apply("post", "p1", update("p1", 1, unit(1)))
    assert store.apply("post", "p1", update("p1", 3, unit(2))) == "applied"
    [(hit, record)] = store.search(unit(2), 5)
    assert (hit.post_id, record.version) == ("p1", 3)
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    assert store.counts()["posts"] == 1


@pytest.mark.parametrize("version", [2, 1])
def test_equal_or_older_version_is_stale(store: IndexStore, version: int) -> None:
    store.apply("post", "p1", update("p1", 2, unit(1)))
    assert store.apply("post", "p1", update("p1", version, unit(9))) == "stale"
    [(hit, record)] = store.search(unit(1), 5)
    assert record.version == 2
    assert hit.score == pytest.approx(1.0, abs=1e-5)


# --- deletes -------------------------------------------------------------------------------


def test_tombstone_removes_and_is_remembered(store: IndexStore) -> None:
    store.apply("post", "p1", update("p1", 1))
    store.apply("post", "p2", update("p2", 1))
    assert store.apply("post", "p1", None) == "removed"
    assert store.post("p1") is None
    assert store.is_deleted("p1") is True
    assert top_ids(store, unit(0), 10) == ["p2"]
    assert store.counts() == {"posts": 1, "members": 0, "deleted_posts": 1}


def test_late_insert_of_a_deleted_post_is_dropped(store: IndexStore) -> None:
    store.apply("post", "p1", update("p1", 1))
    store.apply("post", "p1", None)
    assert store.apply("post", "p1", update("p1", 99)) == "dropped_deleted"
    assert store.post("p1") is None
    assert top_ids(store, unit(0), 10) == []


def test_tombstone_before_any_insert_is_remembered(store: IndexStore) -> None:
    assert store.apply("post", "p1", None) == "absent"
    assert store.is_deleted("p1")
    assert store.apply("post", "p1", update("p1", 1)) == "dropped_deleted"
    assert store.counts() == {"posts": 0, "members": 0, "deleted_posts": 1}


def test_deleted_post_leaves_its_author_set(store: IndexStore) -> None:
    store.apply("post", "p1", update("p1", 1, author="a1"))
    store.apply("post", "p2", update("p2", 1, author="a2"))
    store.apply("post", "p1", None)
    assert top_ids(store, unit(0), 10, flt=PostFilter(exclude_authors=frozenset({"a1"}))) == ["p2"]


# --- replay --------------------------------------------------------------------------------


def history() -> list[tuple[str, EmbeddingUpdate | None]]:
    events: list[tuple[str, EmbeddingUpdate | None]] = []
    for i in range(60):
        events.append((f"p{i}", update(f"p{i}", 1, unit(1_000 + i), author=f"a{i % 7}")))
    for i in range(0, 60, 3):
        events.append((f"p{i}", update(f"p{i}", 2, unit(2_000 + i), author=f"a{i % 7}")))
    for i in range(0, 60, 5):
        events.append((f"p{i}", None))
    events.append(("p1", update("p1", 1, unit(3_000))))  # stale duplicate
    return events


def test_replaying_the_same_sequence_twice_changes_nothing(store: IndexStore) -> None:
    queries = [unit(9_000 + q) for q in range(5)]
    outcomes_first = [store.apply("post", pid, u, live=False) for pid, u in history()]
    first = [[(h.post_id, h.score, r.version) for h, r in store.search(q, 10)] for q in queries]
    counts = store.counts()
    outcomes_again = [store.apply("post", pid, u, live=False) for pid, u in history()]
    again = [[(h.post_id, h.score, r.version) for h, r in store.search(q, 10)] for q in queries]
    assert again == first
    assert store.counts() == counts == {"posts": 48, "members": 0, "deleted_posts": 12}
    assert outcomes_first.count("applied") == 60 + 20
    assert set(outcomes_again) == {"stale", "dropped_deleted", "absent"}


def test_two_stores_fed_the_same_sequence_agree() -> None:
    stores = [IndexStore(dim=DIM, model_version=MODEL) for _ in range(2)]
    for s in stores:
        for pid, u in history():
            s.apply("post", pid, u, live=False)
    query = unit(42)
    first, second = ([(h.post_id, h.score) for h, _ in s.search(query, 20)] for s in stores)
    assert first == second
    assert len(first) == 20


# --- members -------------------------------------------------------------------------------


def test_member_upsert_stale_and_tombstone(store: IndexStore) -> None:
    assert store.member("m1") is None
    v1, v2 = unit(11), unit(12)
    assert store.apply("member", "m1", update("m1", 1, v1, entity="member")) == "applied"
    assert store.apply("member", "m1", update("m1", 1, v2, entity="member")) == "stale"
    record = store.member("m1")
    assert record is not None
    assert record.version == 1
    assert np.array_equal(record.vector, v1)
    assert store.apply("member", "m1", update("m1", 2, v2, entity="member")) == "applied"
    record = store.member("m1")
    assert record is not None
    assert (record.version, record.prompt_version) == (2, "member-simple-1")
    assert np.array_equal(record.vector, v2)
    assert store.counts() == {"posts": 0, "members": 1, "deleted_posts": 0}
    assert len(store.backend) == 0  # members never enter the post index
    assert store.apply("member", "m1", None) == "removed"
    assert store.apply("member", "m1", None) == "absent"
    assert store.member("m1") is None


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "entity_id", "bad", "reason", "message"),
    [
        (
            "post",
            "p1",
            update("p1", 5, unit(1, dim=8)),
            "dim_mismatch",
            "p1: vector has dimension 8; this index holds 16",
        ),
        (
            "post",
            "p1",
            update("p1", 5, np.full(DIM, np.nan, np.float32)),
            "non_finite",
            "p1: vector holds NaN or infinity",
        ),
        (
            "post",
            "p1",
            update("p1", 5, np.r_[np.ones(DIM - 1), np.inf].astype(np.float32)),
            "non_finite",
            "p1: vector holds NaN or infinity",
        ),
        (
            "post",
            "p1",
            update("p1", 5, model_version="other@2"),
            "unknown_model_version",
            "p1: model_version 'other@2', this index serves 'test-model@1'",
        ),
        (
            "post",
            "p1",
            update("p2", 5),
            "wrong_entity",
            "record for post 'p2' arrived keyed as post 'p1'",
        ),
        (
            "member",
            "p1",
            update("p1", 5),
            "wrong_entity",
            "record for post 'p1' arrived keyed as member 'p1'",
        ),
    ],
)
def test_invalid_updates_raise_and_leave_the_index_unchanged(
    store: IndexStore,
    entity: Entity,
    entity_id: str,
    bad: EmbeddingUpdate,
    reason: str,
    message: str,
) -> None:
    original = unit(1)
    store.apply("post", "p1", update("p1", 1, original))
    before = (store.counts(), store.post("p1"), store.search(original, 5))
    with pytest.raises(InvalidUpdate) as caught:
        store.apply(entity, entity_id, bad)
    assert caught.value.reason == reason
    assert str(caught.value) == message
    assert (store.counts(), store.post("p1"), store.search(original, 5)) == before
    assert store.member("p1") is None
    assert store.freshness.percentiles("post")["count"] == 1


@pytest.mark.parametrize("vector_b64", ["AAAAAAA=", "not base64!"])
def test_truncated_or_garbled_vector_bytes_never_reach_the_store(vector_b64: str) -> None:
    document = update("p1", 1).model_dump() | {"vector_b64": vector_b64}
    with pytest.raises(InvalidRecord) as caught:
        decode(EmbeddingUpdate, json.dumps(document).encode())
    assert caught.value.reason == "schema_invalid" and "vector_b64" in str(caught.value)


# --- search filters ------------------------------------------------------------------------


def test_exclude_authors_still_returns_k(store: IndexStore) -> None:
    query = unit(77)
    # author "me" owns the 30 posts closest to the query
    for i in range(30):
        near = query + 0.05 * unit(500 + i)
        store.apply(
            "post", f"mine{i}", update(f"mine{i}", 1, near / np.linalg.norm(near), author="me")
        )
    others = {f"other{i}": unit(600 + i) for i in range(30)}
    for i, (post_id, vector) in enumerate(others.items()):
        store.apply("post", post_id, update(post_id, 1, vector, author=f"o{i % 3}"))
    assert all(p.startswith("mine") for p in top_ids(store, query, 10))
    hits = store.search(query, 10, PostFilter(exclude_authors=frozenset({"me"})))
    assert len(hits) == 10
    assert all(record.attrs["author_id"] != "me" for _, record in hits)
    expected = sorted(others, key=lambda p: -float(others[p] @ query))[:10]
    assert [h.post_id for h, _ in hits] == expected


def test_exclude_posts_and_authors_combine(store: IndexStore) -> None:
    for i in range(6):
        store.apply("post", f"p{i}", update(f"p{i}", 1, author="a" if i < 3 else "b"))
    flt = PostFilter(exclude_authors=frozenset({"a"}), exclude_posts=frozenset({"p4"}))
    remaining = top_ids(store, unit(0), 10, flt=flt)
    assert sorted(remaining) == ["p3", "p5"]
    assert top_ids(store, unit(0), 10, flt=PostFilter(exclude_authors=frozenset({"nobody"}))) != []


def test_posts_without_author_are_never_author_filtered(store: IndexStore) -> None:
    store.apply("post", "p1", update("p1", 1, author=None))
    flt = PostFilter(exclude_authors=frozenset({"None", ""}))
    assert top_ids(store, unit(0), 5, flt=flt) == ["p1"]


# --- freshness -----------------------------------------------------------------------------


def test_freshness_observed_for_live_applies_only(store: IndexStore) -> None:
    event_ms = int(time.time() * 1000) - 5_000
    store.apply("post", "p1", update("p1", 1, event_time_ms=event_ms), live=False)
    assert store.freshness.percentiles("post") == {"count": 0}
    store.apply("post", "p2", update("p2", 1, event_time_ms=event_ms), live=True)
    store.apply("post", "p2", update("p2", 1, event_time_ms=event_ms), live=True)  # stale
    store.apply("post", "p2", None, live=True)  # removals are not observed
    stats = store.freshness.percentiles("post")
    assert stats["count"] == 1
    assert 5.0 <= stats["p50"] < 15.0
    assert store.freshness.percentiles("member") == {"count": 0}
    store.apply("member", "m1", update("m1", 1, entity="member", event_time_ms=event_ms))
    assert store.freshness.percentiles("member")["count"] == 1


# --- threads -------------------------------------------------------------------------------


class ThreadCountingFlat(FlatBackend):
    """A flat backend that records FAISS's OpenMP thread count in each search."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.threads_seen: list[int] = []

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        self.threads_seen.append(faiss.omp_get_max_threads())
        return super().search(queries, k, allowed)


@pytest.mark.parametrize(("setting", "expected"), [(1, 1), (3, 3), (0, 2)])  # 0: flat keeps 2
def test_search_sets_faiss_threads_in_its_own_thread_and_restores_them(
    setting: int, expected: int
) -> None:
    backend = ThreadCountingFlat(DIM)
    store = IndexStore(DIM, MODEL, backend, IndexSettings(backend="flat", search_threads=setting))
    for i in range(5):
        store.apply("post", f"p{i}", update(f"p{i}"))
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        inside = threading.Event()
        release = threading.Event()

        def search_while_main_looks() -> None:
            with omp_threads(setting):
                inside.set()
                release.wait(10)
            store.search(unit(1), 3)

        worker = threading.Thread(target=search_while_main_looks)
        worker.start()
        assert inside.wait(10)
        assert faiss.omp_get_max_threads() == 2  # the other thread's setting is not ours
        release.set()
        worker.join(10)
        assert backend.threads_seen == [expected]
        assert faiss.omp_get_max_threads() == 2
        store.search(unit(2), 3)  # and in this thread: set for the search, then restored
        assert backend.threads_seen == [expected, expected]
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)


@pytest.mark.parametrize(("backend", "expected"), [("flat", 0), ("hnsw", 1), ("ivf", 1)])
def test_auto_search_threads_is_one_for_probing_backends(backend: str, expected: int) -> None:
    auto = IndexSettings(backend=backend)
    assert IndexStore(DIM, MODEL, settings=auto).search_threads == expected
    explicit = IndexSettings(backend=backend, search_threads=2)
    assert IndexStore(DIM, MODEL, settings=explicit).search_threads == 2


@pytest.mark.parametrize("bad", ["-1", "two", "1.5"])
def test_bad_search_threads_are_refused(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLINE_INDEX_SEARCH_THREADS", bad)
    with pytest.raises(ValueError, match="search_threads"):
        IndexSettings()
