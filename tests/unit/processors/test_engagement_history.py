"""``processors.engagement_history``: time order, late inserts, the bound, replays, threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from processors.engagement_history import HistoryEvent, MemberHistories
from schemas import Action, Engagement


def event(
    post_id: str, ts_ms: int, action: Action = "like", device: str | None = None
) -> HistoryEvent:
    return HistoryEvent(post_id, action, ts_ms, device)


def engagement(member_id: str, post_id: str, ts_ms: int, **overrides: Any) -> Engagement:
    fields: dict[str, Any] = {
        "schema_version": 1,
        "member_id": member_id,
        "post_id": post_id,
        "action": "click",
        "ts_ms": ts_ms,
    }
    return Engagement(**{**fields, **overrides})


def test_in_order_events_are_kept_oldest_first() -> None:
    histories = MemberHistories()
    for i in range(5):
        histories.add("m1", event(f"p{i}", 100 + i))
    assert [e.post_id for e in histories.get("m1")] == ["p0", "p1", "p2", "p3", "p4"]
    assert len(histories) == 1 and histories.steps() == 5


def test_late_events_are_inserted_in_time_order() -> None:
    histories = MemberHistories()
    for post_id, ts in [("a", 10), ("c", 30), ("e", 50), ("b", 20), ("d", 40), ("z", 5)]:
        histories.add("m1", event(post_id, ts))
    assert [e.ts_ms for e in histories.get("m1")] == [5, 10, 20, 30, 40, 50]
    assert [e.post_id for e in histories.get("m1")] == ["z", "a", "b", "c", "d", "e"]


def test_events_at_the_same_time_keep_arrival_order() -> None:
    histories = MemberHistories()
    histories.add("m1", event("a", 10))
    histories.add("m1", event("c", 20))
    histories.add("m1", event("b1", 10, "click"))  # late, ties with "a": goes after it
    histories.add("m1", event("b2", 10, "share"))
    assert [e.post_id for e in histories.get("m1")] == ["a", "b1", "b2", "c"]


def test_the_bound_keeps_the_newest_events() -> None:
    histories = MemberHistories(max_steps=3)
    for ts in [1, 2, 3, 4, 5]:
        histories.add("m1", event(f"p{ts}", ts))
    assert [e.ts_ms for e in histories.get("m1")] == [3, 4, 5]
    histories.add("m1", event("old", 0))  # older than everything held: dropped at once
    histories.add("m1", event("mid", 4))
    assert [e.post_id for e in histories.get("m1")] == ["p4", "mid", "p5"]
    assert histories.steps() == 3


def test_replayed_deliveries_are_stored_once() -> None:
    histories = MemberHistories()
    for _ in range(2):  # an at-least-once replay of the whole sequence
        histories.add("m1", event("p1", 10))
        histories.add("m1", event("p2", 20))
        histories.add("m1", event("p3", 20, "comment"))
    histories.add("m1", event("p1", 10, device="ios"))  # same delivery, device aside
    histories.add("m1", event("p2", 20, "share"))  # a different action is a new step
    histories.add("m1", event("p1", 11))  # a different time is a new step
    assert histories.get("m1") == [
        event("p1", 10),
        event("p1", 11),
        event("p2", 20),
        event("p3", 20, "comment"),
        event("p2", 20, "share"),
    ]
    assert histories.steps() == 5


def test_unknown_members_have_an_empty_history() -> None:
    histories = MemberHistories()
    assert histories.get("nobody") == []
    assert len(histories) == 0  # asking does not create the member


def test_get_returns_a_copy() -> None:
    histories = MemberHistories()
    histories.add("m1", event("p1", 1))
    histories.get("m1").append(event("p2", 2))
    assert histories.get("m1") == [event("p1", 1)]


def test_engagements_go_to_their_member() -> None:
    histories = MemberHistories()
    histories.add_engagement(engagement("m1", "p1", 10, device="android"))
    histories.add_engagement(engagement("m2", "p1", 11, action="skip"))
    assert histories.get("m1") == [HistoryEvent("p1", "click", 10, "android")]
    assert histories.get("m2") == [HistoryEvent("p1", "skip", 11, None)]
    histories.clear()
    assert len(histories) == 0 and histories.steps() == 0 and histories.get("m1") == []


def test_max_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        MemberHistories(max_steps=0)


def test_concurrent_writers_and_readers_keep_totals() -> None:
    histories = MemberHistories(max_steps=200)
    members, per_thread, threads_n = 10, 400, 8
    start = threading.Barrier(threads_n + 1)
    errors: list[BaseException] = []

    def write(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            # thread t writes times t, t+8, t+16, …: threads interleave, often out of order
            ts = i * threads_n + t
            histories.add(f"m{ts % members}", event(f"p{ts}", ts))
            histories.add(f"m{ts % members}", event(f"p{ts}", ts))  # a replay: ignored

    def read() -> None:
        start.wait()
        try:
            for _ in range(2_000):
                times = [e.ts_ms for e in histories.get("m0")]
                assert times == sorted(times) and len(times) <= 200
        except BaseException as error:  # re-raised in the test thread below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(threads_n)]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    # 3,200 distinct events, 320 per member: each keeps its newest 200, whatever the order
    assert len(histories) == members and histories.steps() == members * 200
    written = range(threads_n * per_thread)
    for m in range(members):
        newest = sorted(ts for ts in written if ts % members == m)[-200:]
        assert [e.ts_ms for e in histories.get(f"m{m}")] == newest
