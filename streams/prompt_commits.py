"""The prompt processor's commit point: offsets of processed records whose effects are in Kafka.

Why feedline commits for faust: faust-streaming 0.15.3 commits the offsets its streams
*acknowledge*, and it acknowledges records it never handed to the agent. The loss reproduced
for issue 12 on the real broker (README, *Faults*) went like this: after a
rebalance, ``Recovery.on_recovery_completed`` resumes the stream partitions *before*
``perform_seek()`` moves them to the committed offsets, so the agent already processes records
fetched from the old position (57..66 of a partition). ``perform_seek()`` then resets faust's
read offset to the committed 57; the next record delivered, 68, comes from a batch fetched
before the seek, so faust takes 58..68 for a compaction hole (``Consumer._add_gap``) and
acknowledges it, and the re-fetched records below 68 are dropped as already read
(``offset < read_offset`` in ``_drain_messages``). Record 67 was never processed, yet the
commit covers it. Other paths acknowledge unprocessed records too: the stream acks a record
it skips because its generation is stale or flow is suspended, and acks in a ``finally`` when
the agent raises; ``ProducerBuffer.flush()`` returns while changelog writes are queued.

So the worker subscribes with ``acks=False`` (faust then never tracks or commits these
topics) and this committer decides instead, per record:

1. ``admit``: the ``OffsetLedger`` verdict. The first record of a newly assigned partition
   makes it look up where the group resumes (committed offset or log start). A record above
   the expected offset makes it seek the partition back, so nothing is ever skipped.
2. the agent handles the record;
3. ``processed``: the ledger moves past the record;
4. at the end of the batch the agent sends the batch's outputs and table writes; every send
   is tracked (``DeliveryTracker``), changelog writes included (``TrackedTable``). The agent
   holds its ``handling`` lock from its batch's first ``admit`` to its last send
   (``batch()``); a batch that raises half way stops all further commits.

``commit()`` (on a timer, when partitions are revoked and at shutdown) takes the ledger's
commit point and the pending sends at one instant between batches (every ``handling`` lock
held), waits until those sends are acknowledged, and only then commits. A failed send raises
``DeliveryFailed``, which stops the worker: it restarts from the last commit, at-least-once.
On revocation the committer first waits for the batches in hand, commits, and forgets the
revoked partitions, so a partition's next owner starts where this one stopped.

``refetch_stalled()`` (on a timer) is the liveness half: a partition whose log has records
past the expected offset but that delivered nothing for ``stall_s`` is sought back to the
expected offset and handed back to faust's fetcher. faust's flow control can leave a
partition unfetched after a broker outage (the short soak saw ``members.profile[0]`` stall
with lag while ``engagements.by-member[0]``, on the same agent, kept flowing); nothing is
lost then, since nothing is committed past it, but its records would wait forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

from faust.types import TP

from processors.offset_ledger import OffsetLedger, Verdict
from streams.deliveries import DeliveryTracker
from streams.metrics import PromptMetrics

log = logging.getLogger(__name__)

ResumeOffsets = Callable[[Sequence[TP]], Awaitable[dict[TP, int]]]
"""Where the group resumes on each partition (committed offset, else log start)."""


class CommitConsumer(Protocol):
    """What the committer needs of the faust consumer (``streams.faust_transport.Consumer``)."""

    def assignment(self) -> set[TP]:
        """The partitions assigned now."""

    async def seek_partition(self, tp: TP, offset: int) -> None:
        """Fetch ``tp`` from ``offset`` next."""

    async def commit_offsets(self, offsets: dict[TP, int]) -> bool:
        """Commit exactly ``offsets``; False when the group rebalanced meanwhile."""

    async def end_offsets(self, tps: Sequence[TP]) -> dict[TP, int]:
        """The offset the next record of each of ``tps`` will get."""

    async def refetch(self, tp: TP, offset: int) -> None:
        """Fetch ``tp`` from ``offset`` next, even if faust had stopped fetching it."""


class PromptCommitter:
    """Owns which offsets the prompt processor commits (see the module docstring)."""

    def __init__(
        self,
        consumer: Callable[[], CommitConsumer],
        topics: Iterable[str],
        resume_offsets: ResumeOffsets,
        deliveries: DeliveryTracker,
        metrics: PromptMetrics,
        delivery_timeout_s: float = 300.0,
        stall_s: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self.topics = frozenset(topics)
        self._resume_offsets = resume_offsets
        self.deliveries = deliveries
        self.metrics = metrics
        self.delivery_timeout_s = delivery_timeout_s
        self.stall_s = stall_s
        self._clock = clock
        self._last_seen: dict[TP, float] = {}
        """When each partition last delivered a record or was (re)assigned."""
        self.ledger: OffsetLedger[TP] = OffsetLedger()
        self._handling: dict[str, asyncio.Lock] = {}
        self._commit_lock = asyncio.Lock()
        self._lookup_lock = asyncio.Lock()
        self.halted: str | None = None
        """Why nothing may be committed any more (a batch failed half way), if so."""

    def handling(self, agent: str) -> asyncio.Lock:
        """The lock ``agent`` holds while it handles one batch (commits wait for it)."""
        return self._handling.setdefault(agent, asyncio.Lock())

    @asynccontextmanager
    async def batch(self, agent: str) -> AsyncIterator[None]:
        """Handle one batch of ``agent`` under its ``handling`` lock. A batch that raises
        (a bug, or the task cancelled at shutdown) may have marked records processed whose
        sends were never made, so from then on nothing is committed: the worker restarts
        from the last commit."""
        async with self.handling(agent):
            try:
                yield
            except BaseException as error:
                self.halted = f"{agent}: {type(error).__name__}: {error}"
                log.error("no more commits: a batch failed (%s)", self.halted)
                raise

    async def admit(self, tp: TP, offset: int) -> bool:
        """Whether to process the record of ``tp`` at ``offset`` (call under ``handling``)."""
        self._last_seen[tp] = self._clock()
        verdict = self.ledger.admit(tp, offset)
        if verdict is Verdict.UNKNOWN:
            await self._look_up(tp)
            verdict = self.ledger.admit(tp, offset)
        if verdict is Verdict.PROCESS:
            return True
        self.metrics.offset_verdicts.labels(tp.topic, verdict.value).inc()
        if verdict is Verdict.SEEK:
            expected = self.ledger.expected(tp)
            log.info("%s[%d]: got offset %d, expected %d; seeking back", *tp, offset, expected)
            await self._consumer().seek_partition(tp, expected)
        return False

    def processed(self, tp: TP, offset: int) -> None:
        """The record of ``tp`` at ``offset`` was handled; its sends are tracked before its
        agent's ``handling`` lock is released (call under it)."""
        self.ledger.processed(tp, offset)

    async def commit(self) -> None:
        """Commit every processed offset whose sends are acknowledged.

        The commit point and the sends it depends on are taken between batches (every agent's
        ``handling`` lock held for that instant only): inside a batch, records are marked
        processed as they are handled while their table writes and outputs are sent at its
        end.

        Raises:
            DeliveryFailed: a send failed or timed out; nothing was committed.
        """
        async with self._commit_lock:
            async with self._between_batches():
                offsets = self.ledger.commit_point()
                sends = self.deliveries.snapshot()
            await self._commit(offsets, sends)

    async def _commit(self, offsets: dict[TP, int], sends: list[asyncio.Future[object]]) -> None:
        if not offsets or self.halted is not None:
            return
        await self.deliveries.settle(sends, self.delivery_timeout_s)
        if await self._consumer().commit_offsets(offsets):
            self.ledger.committed(offsets)
            self.metrics.commits.labels("committed").inc()
        else:
            self.metrics.commits.labels("rebalanced").inc()

    async def refetch_stalled(self) -> list[TP]:
        """Seek back and refetch every owned partition that has records past its expected
        offset yet delivered none for ``stall_s``; returns those partitions."""
        now = self._clock()
        quiet = [
            tp
            for tp in self._consumer().assignment()
            if tp.topic in self.topics and now - self._last_seen.setdefault(tp, now) >= self.stall_s
        ]
        if not quiet:
            return []
        ends = await self._consumer().end_offsets(quiet)
        stalled = []
        for tp in quiet:
            if not self.ledger.owns(tp):  # nothing delivered since it was assigned
                await self._look_up(tp)
            if not self.ledger.owns(tp) or ends.get(tp, 0) <= self.ledger.expected(tp):
                continue  # revoked meanwhile, or caught up
            expected = self.ledger.expected(tp)
            log.warning(
                "%s[%d]: nothing delivered for %.0f s at offset %d of %d; fetching it again",
                *tp, now - self._last_seen[tp], expected, ends[tp],
            )  # fmt: skip
            self.metrics.offset_verdicts.labels(tp.topic, "stalled").inc()
            await self._consumer().refetch(tp, expected)
            self._last_seen[tp] = now
            stalled.append(tp)
        return stalled

    async def on_revoked(self, revoked: Iterable[TP]) -> None:
        """Let the batches in hand finish, commit, and forget ``revoked``."""
        async with self._commit_lock, self._between_batches():
            await self._commit(self.ledger.commit_point(), self.deliveries.snapshot())
            self.ledger.revoke(revoked)
            for tp in revoked:
                self._last_seen.pop(tp, None)

    @asynccontextmanager
    async def _between_batches(self) -> AsyncIterator[None]:
        """Hold every agent's ``handling`` lock: no batch is half handled meanwhile."""
        async with AsyncExitStack() as stack:
            for lock in list(self._handling.values()):
                await stack.enter_async_context(lock)
            yield

    async def _look_up(self, tp: TP) -> None:
        """Assign ``tp`` (and every other assigned partition not known yet, in one lookup) at
        the offset the group resumes from. Both agents may ask at once: the second finds
        the partitions known after waiting for the first."""
        async with self._lookup_lock:
            unknown = {
                p
                for p in {tp, *self._consumer().assignment()}
                if p.topic in self.topics and not self.ledger.owns(p)
            }
            if not unknown:
                return
            resume = await self._resume_offsets(sorted(unknown))
            for partition in unknown:
                self.ledger.assign(partition, resume[partition])
            log.info("resuming %d partitions at %s", len(unknown), _describe(resume))


def _describe(offsets: dict[TP, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(offsets.items()))
