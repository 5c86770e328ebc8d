"""Futures of records sent to Kafka, so offsets are committed only once their effects are.

Every send the prompt processor makes (prompts, repartitioned engagements, dead letters, table
changelog writes) hands its delivery future to a ``DeliveryTracker``. Before a commit, the
committer takes a ``snapshot()`` (every send of every record processed so far) and awaits
``settle()`` on it: it returns once all of them are acknowledged by the broker, and raises
``DeliveryFailed`` if any of them failed, in which case nothing may be committed.

Why not ``producer.flush()``: faust's ``ProducerBuffer.flush()`` gives up after 0.1 s while
changelog writes are still queued (``flush_atmost`` returns on its first timeout), and
aiokafka's ``flush()`` returns when a batch failed as well as when it was delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from streams.errors import StreamsError


class DeliveryFailed(StreamsError):
    """A record could not be delivered; the offsets of its source must not be committed."""


class DeliveryTracker:
    """The set of sends not yet acknowledged, plus the failures since the last ``settle()``."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Future[object]] = set()
        self._failures: list[str] = []

    def track(self, delivery: Awaitable[object]) -> None:
        """Watch one send's delivery future (a faust ``FutureMessage`` or an aiokafka future)."""
        future = asyncio.ensure_future(delivery)
        if future.done():
            self._note(future)
            return
        self._pending.add(future)
        future.add_done_callback(self._done)

    @property
    def pending(self) -> int:
        """Sends not yet acknowledged."""
        return len(self._pending)

    def snapshot(self) -> list[asyncio.Future[object]]:
        """The sends made so far (what a commit of the offsets processed so far depends on)."""
        return list(self._pending)

    async def settle(self, sends: list[asyncio.Future[object]], timeout_s: float) -> None:
        """Wait until every future in ``sends`` is done.

        Raises:
            DeliveryFailed: one of them (or any send since the last call) failed, or they did
                not all finish within ``timeout_s``.
        """
        if sends:
            _, late = await asyncio.wait(sends, timeout=timeout_s)
            if late:
                raise DeliveryFailed(
                    f"{len(late)} of {len(sends)} records not acknowledged after "
                    f"{timeout_s:.0f} s; is the broker reachable?"
                )
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryFailed(
                f"{len(failures)} records were not delivered: " + "; ".join(failures[:5])
            )

    def _done(self, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        self._note(future)

    def _note(self, future: asyncio.Future[object]) -> None:
        if future.cancelled():
            self._failures.append("a send was cancelled")
        elif (error := future.exception()) is not None:
            self._failures.append(f"{type(error).__name__}: {error}")
