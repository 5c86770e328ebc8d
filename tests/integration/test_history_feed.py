"""The history feed on a real broker: replay from the beginning, readiness, invalid records
skipped, live events after readiness, and a restart that rebuilds the same histories."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from processors.engagement_history import HistoryEvent, MemberHistories
from schemas import Action, Engagement
from service.feeds.history_feed import HistoryFeed
from streams.producer import EventProducer
from streams.settings import KafkaSettings

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


def engagement(member_id: str, post_id: str, ts_ms: int, action: Action = "like") -> Engagement:
    fields = {"schema_version": 1, "member_id": member_id, "post_id": post_id,
              "action": action, "ts_ms": ts_ms, "device": "web"}  # fmt: skip
    return Engagement.model_validate(fields)


def expected(events: list[Engagement], member_id: str) -> list[HistoryEvent]:
    """A member's events as the feed should hold them: once each, oldest first."""
    mine = {HistoryEvent.from_engagement(e) for e in events if e.member_id == member_id}
    return sorted(mine, key=lambda e: e.ts_ms)


def publish(kafka: KafkaSettings, events: list[Engagement], raw: list[tuple[bytes, bytes]]) -> None:
    with EventProducer(kafka) as producer:
        for event in events:
            producer.publish(event)
        for key, value in raw:
            producer.publish_raw(kafka.topic("engagements"), key, value)


async def eventually(condition: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    """Yield to the feed until ``condition()`` is truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def run_until_ready(feed: HistoryFeed) -> asyncio.Task[None]:
    """Run a started feed in a task and wait until it caught up."""
    task = asyncio.create_task(feed.run())
    await asyncio.wait_for(feed.ready.wait(), 30)
    return task


async def cancel(task: asyncio.Task[None]) -> None:
    """Cancel a feed's ``run()`` task and wait until it ended."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_replays_follows_and_rebuilds_histories(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory()
    # keyed by post: each member's events are spread over both partitions, out of time order
    history = [
        engagement("m1", f"p{i}", T0 + (7 * i) % 20, "click" if i % 3 else "like")
        for i in range(20)
    ] + [engagement("m2", f"p{i}", T0 + 100 - i, "skip") for i in range(10)]
    history.append(history[4])  # an at-least-once replay: stored once
    malformed = (b"p1", b"{not json")
    unknown_action = json.loads(history[0].model_dump_json()) | {"action": "poke"}
    schema_invalid = (b"p0", json.dumps(unknown_action).encode())
    await asyncio.to_thread(publish, kafka, history, [malformed, schema_invalid])

    histories = MemberHistories()
    async with HistoryFeed(kafka, histories) as feed:
        assert not feed.ready.is_set()
        task = await run_until_ready(feed)
        assert histories.get("m1") == expected(history, "m1")
        assert histories.get("m2") == expected(history, "m2")
        assert len(histories.get("m1")) == 20 and len(histories) == 2
        assert (feed.applied, feed.skipped) == (len(history), 2)
        assert feed.lag() == 0

        live = [engagement("m2", "p-live", T0 + 1_000, "share"), engagement("m3", "p0", T0)]
        history += live
        await asyncio.to_thread(publish, kafka, live, [])
        await eventually(lambda: histories.steps() == 32, "the live events")
        assert histories.get("m2")[-1] == HistoryEvent("p-live", "share", T0 + 1_000, "web")
        assert histories.get("m3") == expected(history, "m3")
        await cancel(task)

    for replay_into in (histories, MemberHistories()):  # the same object, or a fresh one
        async with HistoryFeed(kafka, replay_into) as again:
            await cancel(await run_until_ready(again))
        assert {m: replay_into.get(m) for m in ("m1", "m2", "m3")} == {
            m: expected(history, m) for m in ("m1", "m2", "m3")
        }
        assert replay_into.steps() == 32 and again.skipped == 2


async def test_an_empty_topic_is_ready_at_once(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    histories = MemberHistories()
    async with HistoryFeed(kafka_factory(), histories) as feed:
        assert feed.ready.is_set() and feed.lag() == 0
    assert len(histories) == 0
