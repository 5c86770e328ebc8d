"""Which records of each partition a consumer has processed, and so which offsets it may commit.

The prompt processor owns its commit point with this ledger instead of trusting faust's
acknowledgements (see ``streams.prompt_commits`` for why). Per partition it knows ``expected``:
the offset of the next record it must process, starting at the group's committed offset (or
the log start) when the partition is assigned. A delivered record is then:

* ``PROCESS`` when it is the expected one (``expected`` moves past it once it is processed);
* ``SKIP`` when it lies below ``expected``: a record processed already, delivered again after
  a seek back, or one fetched before a seek that a check below asked for;
* ``SEEK`` when it lies above ``expected``: records were not delivered. That is normal on a
  compacted topic or across transaction markers, but it is also how a stale prefetched batch
  looks after a rebalance (faust #221). The consumer seeks back to ``expected``, once; if the
  first record fetched from there is this one (or any at or below it), the hole is real and
  it is processed. Records above it that arrive meanwhile were fetched before the seek: they
  are skipped, and fetched again in order.

The consumer must deliver everything it fetches after a seek (faust's own read-offset drop is
switched off for these partitions, see ``streams.faust_transport``).

Nothing here talks to Kafka: partitions are any hashable value, offsets plain ints.

Example::

    ledger = OffsetLedger()
    ledger.assign(tp, resume_at=476)
    ledger.admit(tp, 477)       # Verdict.SEEK: 476 was never delivered
    ledger.admit(tp, 476)       # Verdict.PROCESS
    ledger.processed(tp, 476)
    ledger.commit_point()       # {tp: 477}
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class Verdict(Enum):
    """What to do with a delivered record."""

    PROCESS = "process"
    SKIP = "skip"
    SEEK = "seek"
    """Do not process; seek the partition back to ``OffsetLedger.expected(tp)``."""
    UNKNOWN = "unknown"
    """The partition is not assigned in the ledger: look its resume offset up first."""


@dataclass
class _Partition:
    expected: int
    committed: int
    hole_until: int | None = None
    """While a hole is being checked: the offset that revealed it (records above are stale)."""


class OffsetLedger(Generic[P]):
    """Per-partition progress of one consumer; commit offsets are always processed ones."""

    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}

    def assign(self, tp: P, resume_at: int) -> None:
        """Start tracking ``tp`` at the offset the group resumes from (committed or log start)."""
        if resume_at < 0:
            raise ValueError(f"resume offset of {tp!r} must be >= 0, got {resume_at}")
        self._partitions[tp] = _Partition(expected=resume_at, committed=resume_at)

    def revoke(self, tps: Iterable[P]) -> None:
        """Forget partitions this consumer no longer owns."""
        for tp in tps:
            self._partitions.pop(tp, None)

    def owns(self, tp: P) -> bool:
        """Whether ``tp`` is tracked (assigned and looked up)."""
        return tp in self._partitions

    def expected(self, tp: P) -> int:
        """The offset of the next record of ``tp`` to process."""
        return self._partitions[tp].expected

    def admit(self, tp: P, offset: int) -> Verdict:
        """The verdict on a delivered record of ``tp`` at ``offset``."""
        state = self._partitions.get(tp)
        if state is None:
            return Verdict.UNKNOWN
        if offset < state.expected:
            return Verdict.SKIP
        if offset == state.expected:
            state.hole_until = None
            return Verdict.PROCESS
        if state.hole_until is None:
            state.hole_until = offset
            return Verdict.SEEK
        if offset <= state.hole_until:
            # the first record at or after ``expected`` since the seek: the hole is real
            state.hole_until = None
            return Verdict.PROCESS
        return Verdict.SKIP  # fetched before the seek took effect

    def processed(self, tp: P, offset: int) -> None:
        """Record that the record of ``tp`` at ``offset`` was handled (its outputs sent).

        A partition revoked meanwhile is ignored: its new owner processes the record again.
        """
        state = self._partitions.get(tp)
        if state is not None and offset >= state.expected:
            state.expected = offset + 1

    def commit_point(self) -> dict[P, int]:
        """``{tp: offset}`` to commit for every partition with progress since its last commit."""
        return {
            tp: state.expected
            for tp, state in self._partitions.items()
            if state.expected > state.committed
        }

    def committed(self, offsets: dict[P, int]) -> None:
        """Record offsets the group has committed (partitions revoked meanwhile are ignored)."""
        for tp, offset in offsets.items():
            state = self._partitions.get(tp)
            if state is not None:
                state.committed = max(state.committed, offset)
