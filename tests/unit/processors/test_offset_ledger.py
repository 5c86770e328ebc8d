"""``processors.offset_ledger``: commit offsets are always processed ones, whatever faust
delivers (stale prefetched batches, seeks back, compaction holes, rebalances)."""

from __future__ import annotations

import random
from collections import deque

import pytest

from processors.offset_ledger import OffsetLedger, Verdict

TP = ("posts.created", 2)


def test_docstring_example() -> None:
    ledger: OffsetLedger[tuple[str, int]] = OffsetLedger()
    ledger.assign(TP, resume_at=476)
    assert ledger.admit(TP, 477) is Verdict.SEEK
    assert ledger.admit(TP, 476) is Verdict.PROCESS
    ledger.processed(TP, 476)
    assert ledger.commit_point() == {TP: 477}


def test_unknown_partition_needs_a_lookup() -> None:
    ledger: OffsetLedger[tuple[str, int]] = OffsetLedger()
    assert ledger.admit(TP, 0) is Verdict.UNKNOWN
    assert not ledger.owns(TP)


def test_negative_resume_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        OffsetLedger().assign(TP, -1)


def test_the_reproduced_loss_is_sought_back_and_processed() -> None:
    """Issue 12: 57..66 processed before the seek, then 68 from a stale batch, then the
    re-fetch from 57; faust would have committed 69 without ever handling 67."""
    ledger: OffsetLedger[tuple[str, int]] = OffsetLedger()
    ledger.assign(TP, 57)
    for offset in range(57, 67):
        assert ledger.admit(TP, offset) is Verdict.PROCESS
        ledger.processed(TP, offset)
    assert ledger.admit(TP, 68) is Verdict.SEEK
    assert ledger.expected(TP) == 67
    assert ledger.commit_point() == {TP: 67}
    for offset in range(57, 67):  # the re-fetch after faust's own seek to the committed 57
        assert ledger.admit(TP, offset) is Verdict.SKIP
    assert ledger.admit(TP, 67) is Verdict.PROCESS
    ledger.processed(TP, 67)
    assert ledger.admit(TP, 68) is Verdict.PROCESS


def test_a_real_hole_is_processed_after_one_seek() -> None:
    ledger: OffsetLedger[tuple[str, int]] = OffsetLedger()
    ledger.assign(TP, 10)
    assert ledger.admit(TP, 15) is Verdict.SEEK  # 10..14 compacted away
    assert ledger.admit(TP, 16) is Verdict.SKIP  # still queued from before the seek
    assert ledger.admit(TP, 15) is Verdict.PROCESS  # the first record fetched from 10
    ledger.processed(TP, 15)
    assert ledger.commit_point() == {TP: 16}


def test_a_partly_real_hole_resumes_at_the_first_record_fetched() -> None:
    ledger: OffsetLedger[tuple[str, int]] = OffsetLedger()
    ledger.assign(TP, 10)
    assert ledger.admit(TP, 20) is Verdict.SEEK
    assert ledger.admit(TP, 13) is Verdict.PROCESS  # 10..12 do not exist, 13 does
    ledger.processed(TP, 13)
    assert ledger.admit(TP, 20) is Verdict.SEEK  # 14..19 were never delivered


def test_commit_point_only_lists_progress_and_committed_records_it() -> None:
    ledger: OffsetLedger[tuple[str, int]] = OffsetLedger()
    ledger.assign(("a", 0), 5)
    ledger.assign(("a", 1), 0)
    assert ledger.commit_point() == {}
    ledger.processed(("a", 0), 5)
    assert ledger.commit_point() == {("a", 0): 6}
    ledger.committed({("a", 0): 6, ("gone", 0): 3})
    assert ledger.commit_point() == {}


def test_revoked_partitions_are_forgotten_and_late_processing_ignored() -> None:
    ledger: OffsetLedger[tuple[str, int]] = OffsetLedger()
    ledger.assign(TP, 0)
    ledger.revoke([TP])
    ledger.processed(TP, 0)
    ledger.committed({TP: 1})
    assert ledger.commit_point() == {}
    assert ledger.admit(TP, 0) is Verdict.UNKNOWN


class FaustLikeConsumer:
    """A partition log as faust delivers it: the fetcher runs ahead of processing, and on a
    seek the records already fetched are partly dropped (faust skips records of a stale
    generation or while flow is suspended) and partly still delivered after the seek (a
    batch in flight). faust's drop of records below its read offset is off, as in
    ``streams.faust_transport.Consumer``."""

    def __init__(self, log: list[int], rng: random.Random) -> None:
        self.log = log
        self.rng = rng
        self.position = 0
        self.fetched: deque[int] = deque()

    def seek(self, offset: int) -> None:
        in_flight = [o for o in self.fetched if self.rng.random() < 0.5]
        self.fetched = deque(in_flight[: self.rng.randint(0, len(in_flight))])
        self.position = offset

    def deliver(self) -> int | None:
        if not self.fetched:
            batch = [o for o in self.log if o >= self.position][: self.rng.randint(1, 8)]
            if not batch:
                return None
            self.fetched.extend(batch)
            self.position = batch[-1] + 1
        return self.fetched.popleft()


@pytest.mark.parametrize("seed", range(40))
def test_simulated_deliveries_never_commit_past_an_unprocessed_record(seed: int) -> None:
    rng = random.Random(seed)
    log = sorted(rng.sample(range(300), 200))  # holes: compaction, markers
    consumer = FaustLikeConsumer(log, rng)
    ledger: OffsetLedger[tuple[str, int]] = OffsetLedger()
    committed, processed_at_least_once = 0, set()
    seen_this_assignment: set[int] = set()
    for _ in range(5_000):
        if rng.random() < 0.01:  # rebalance: resume from the committed offset
            ledger.revoke([TP])
            consumer.seek(committed)
            seen_this_assignment.clear()
        if rng.random() < 0.01:  # faust's own perform_seek back to the committed offset
            consumer.seek(committed)
        offset = consumer.deliver()
        if offset is None:
            break
        verdict = ledger.admit(TP, offset)
        if verdict is Verdict.UNKNOWN:
            ledger.assign(TP, committed)
            verdict = ledger.admit(TP, offset)
        if verdict is Verdict.SEEK:
            consumer.seek(ledger.expected(TP))
        elif verdict is Verdict.PROCESS:
            assert offset not in seen_this_assignment, "processed twice without a rebalance"
            seen_this_assignment.add(offset)
            processed_at_least_once.add(offset)
            ledger.processed(TP, offset)
        if rng.random() < 0.2 and (point := ledger.commit_point()):
            committed = point[TP]
            ledger.committed(point)
            assert all(o in processed_at_least_once for o in log if o < committed)
    committed = ledger.commit_point().get(TP, committed)  # the final commit
    assert committed == log[-1] + 1, "the consumer did not get to the end of the log"
    assert processed_at_least_once == set(log)
