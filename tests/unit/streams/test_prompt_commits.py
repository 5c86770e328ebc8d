"""``streams.prompt_commits.PromptCommitter``: commits only processed offsets whose sends are
acknowledged, seeks back over what was not delivered, waits for the record in hand on revoke."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.deliveries import DeliveryFailed, DeliveryTracker
from streams.metrics import PromptMetrics
from streams.prompt_commits import PromptCommitter

POSTS = [TP("posts.created", 0), TP("posts.created", 1)]


class FakeConsumer:
    """The three consumer calls the committer makes, recorded."""

    def __init__(self, assigned: set[TP]) -> None:
        self.assigned = assigned
        self.seeks: list[tuple[TP, int]] = []
        self.commits: list[dict[TP, int]] = []
        self.rebalanced = False
        self.ends: dict[TP, int] = {}
        self.refetches: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    async def seek_partition(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def commit_offsets(self, offsets: dict[TP, int]) -> bool:
        if self.rebalanced:
            return False
        self.commits.append(dict(offsets))
        return True

    async def end_offsets(self, tps: Sequence[TP]) -> dict[TP, int]:
        return {tp: self.ends.get(tp, 0) for tp in tps}

    async def refetch(self, tp: TP, offset: int) -> None:
        self.refetches.append((tp, offset))


class Lookups:
    """A resume-offset lookup that counts its calls and can be held up."""

    def __init__(self, offsets: dict[TP, int]) -> None:
        self.offsets = offsets
        self.calls: list[list[TP]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, partitions: Sequence[TP]) -> dict[TP, int]:
        self.calls.append(list(partitions))
        await self.gate.wait()
        return {tp: self.offsets[tp] for tp in partitions}


def make(
    offsets: dict[TP, int] | None = None,
) -> tuple[PromptCommitter, FakeConsumer, Lookups, PromptMetrics]:
    consumer = FakeConsumer(set(POSTS))
    lookups = Lookups(offsets or dict.fromkeys(POSTS, 0))
    metrics = PromptMetrics(CollectorRegistry())
    committer = PromptCommitter(
        lambda: consumer, ["posts.created"], lookups, DeliveryTracker(), metrics, 5.0
    )
    return committer, consumer, lookups, metrics


def verdicts(metrics: PromptMetrics, verdict: str) -> float:
    return metrics.offset_verdicts.labels("posts.created", verdict)._value.get()


async def test_first_records_look_up_every_assigned_partition_once() -> None:
    committer, _, lookups, _ = make({POSTS[0]: 5, POSTS[1]: 9})
    lookups.gate.clear()
    first = asyncio.create_task(committer.admit(POSTS[0], 5))
    second = asyncio.create_task(committer.admit(POSTS[1], 9))
    await asyncio.sleep(0)
    lookups.gate.set()
    assert await first and await second
    assert lookups.calls == [sorted(POSTS)]
    assert committer.ledger.expected(POSTS[1]) == 9


async def test_a_record_above_the_expected_offset_seeks_back_once() -> None:
    committer, consumer, _, metrics = make({POSTS[0]: 476, POSTS[1]: 0})
    assert not await committer.admit(POSTS[0], 478)
    assert not await committer.admit(POSTS[0], 479)  # queued before the seek
    assert consumer.seeks == [(POSTS[0], 476)]
    assert await committer.admit(POSTS[0], 476)
    assert (verdicts(metrics, "seek"), verdicts(metrics, "skip")) == (1, 1)


async def test_commit_waits_for_the_sends_of_processed_records() -> None:
    committer, consumer, _, _ = make()
    assert await committer.admit(POSTS[0], 0)
    delivery: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    committer.deliveries.track(delivery)
    committer.processed(POSTS[0], 0)
    commit = asyncio.create_task(committer.commit())
    await asyncio.sleep(0.05)
    assert not commit.done() and consumer.commits == []
    delivery.set_result("metadata")
    await commit
    assert consumer.commits == [{POSTS[0]: 1}]
    await committer.commit()  # nothing new: no second commit
    assert len(consumer.commits) == 1


async def test_a_failed_send_commits_nothing() -> None:
    committer, consumer, _, _ = make()
    assert await committer.admit(POSTS[0], 0)
    delivery: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    committer.deliveries.track(delivery)
    committer.processed(POSTS[0], 0)
    delivery.set_exception(ConnectionError("broker gone"))
    with pytest.raises(DeliveryFailed, match="broker gone"):
        await committer.commit()
    assert consumer.commits == []


async def test_a_send_that_never_finishes_times_out() -> None:
    committer, consumer, _, _ = make()
    committer.delivery_timeout_s = 0.05
    assert await committer.admit(POSTS[0], 0)
    committer.deliveries.track(asyncio.get_running_loop().create_future())
    committer.processed(POSTS[0], 0)
    with pytest.raises(DeliveryFailed, match="not acknowledged"):
        await committer.commit()
    assert consumer.commits == []


async def test_revoke_waits_for_the_record_in_hand_then_commits_and_forgets() -> None:
    committer, consumer, _, _ = make()
    handling = committer.handling("post-side")
    await handling.acquire()
    assert await committer.admit(POSTS[0], 0)
    revoke = asyncio.create_task(committer.on_revoked(set(POSTS)))
    await asyncio.sleep(0.05)
    assert not revoke.done()
    committer.processed(POSTS[0], 0)
    handling.release()
    await revoke
    assert consumer.commits == [{POSTS[0]: 1}]
    assert not committer.ledger.owns(POSTS[0])


async def test_a_batch_that_fails_half_way_stops_every_later_commit() -> None:
    committer, consumer, _, _ = make()
    with pytest.raises(KeyError):
        async with committer.batch("post-side"):
            assert await committer.admit(POSTS[0], 0)
            committer.processed(POSTS[0], 0)  # marked, but its sends were never made
            raise KeyError("a bug")
    assert committer.halted == "post-side: KeyError: 'a bug'"
    assert not committer.handling("post-side").locked()
    await committer.commit()
    await committer.on_revoked(set(POSTS))
    assert consumer.commits == []


async def test_a_batch_that_completes_is_committed() -> None:
    committer, consumer, _, _ = make()
    async with committer.batch("post-side"):
        assert await committer.admit(POSTS[0], 0)
        committer.processed(POSTS[0], 0)
    await committer.commit()
    assert consumer.commits == [{POSTS[0]: 1}] and committer.halted is None


async def test_a_commit_after_a_rebalance_is_counted_and_not_recorded() -> None:
    committer, consumer, _, metrics = make()
    assert await committer.admit(POSTS[0], 0)
    committer.processed(POSTS[0], 0)
    consumer.rebalanced = True
    await committer.commit()
    assert metrics.commits.labels("rebalanced")._value.get() == 1
    assert committer.ledger.commit_point() == {POSTS[0]: 1}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_partition_silent_with_records_to_read_is_fetched_again() -> None:
    consumer = FakeConsumer(set(POSTS))
    metrics = PromptMetrics(CollectorRegistry())
    clock = Clock()
    committer = PromptCommitter(
        lambda: consumer, ["posts.created"], Lookups(dict.fromkeys(POSTS, 0)),
        DeliveryTracker(), metrics, 5.0, stall_s=10.0, clock=clock,
    )  # fmt: skip
    for offset in (0, 1):
        assert await committer.admit(POSTS[0], offset)
        committer.processed(POSTS[0], offset)
    consumer.ends = {POSTS[0]: 5, POSTS[1]: 0}  # records 2..4 of POSTS[0] never come

    clock.now += 9.0
    assert await committer.refetch_stalled() == []  # not silent for long enough yet
    clock.now += 2.0
    assert await committer.refetch_stalled() == [POSTS[0]]  # POSTS[1] has nothing to read
    assert consumer.refetches == [(POSTS[0], 2)]
    assert verdicts(metrics, "stalled") == 1
    assert await committer.refetch_stalled() == []  # its silence is counted afresh

    clock.now += 11.0
    assert await committer.admit(POSTS[0], 2)  # it flows again: delivered, not silent
    committer.processed(POSTS[0], 2)
    clock.now += 5.0
    assert await committer.refetch_stalled() == []
    assert consumer.refetches == [(POSTS[0], 2)]


async def test_a_silent_partition_never_delivered_is_looked_up_then_fetched_again() -> None:
    consumer = FakeConsumer({POSTS[1]})
    clock = Clock()
    lookups = Lookups({POSTS[1]: 7})
    committer = PromptCommitter(
        lambda: consumer, ["posts.created"], lookups, DeliveryTracker(),
        PromptMetrics(CollectorRegistry()), 5.0, stall_s=10.0, clock=clock,
    )  # fmt: skip
    consumer.ends = {POSTS[1]: 9}
    assert await committer.refetch_stalled() == []  # its clock starts now
    clock.now += 10.0
    assert await committer.refetch_stalled() == [POSTS[1]]
    assert lookups.calls == [[POSTS[1]]] and consumer.refetches == [(POSTS[1], 7)]
