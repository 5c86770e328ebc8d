"""Exponential backoff for calls that wait for the broker (logged, bounded per attempt).

Example::

    policy = Backoff(initial_s=0.5, max_s=10.0)
    offsets = await retry(lambda: asyncio.to_thread(read_offsets), policy, "reading offsets",
                          retry_on=(LagReadError,))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delays that start at ``initial_s`` and grow by ``factor`` up to ``max_s``."""

    initial_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ValueError(f"invalid backoff {self}: need 0 < initial_s <= max_s, factor >= 1")

    def delays(self) -> Iterator[float]:
        """The endless sequence of delays: initial, initial x factor, ..., max, max, ...

        >>> from itertools import islice
        >>> list(islice(Backoff(1, 5, 2).delays(), 5))
        [1, 2, 4, 5, 5]
        """
        delay = self.initial_s
        while True:
            yield delay
            delay = min(self.max_s, delay * self.factor)


async def retry(
    call: Callable[[], Awaitable[T]],
    policy: Backoff,
    what: str,
    retry_on: tuple[type[BaseException], ...],
) -> T:
    """Await ``call()`` until it returns, sleeping per ``policy`` after each error of the
    ``retry_on`` types (logged as a warning with the next delay); other errors propagate."""
    for attempt, delay in enumerate(policy.delays(), start=1):
        try:
            return await call()
        except retry_on as error:
            log.warning(
                "%s failed (attempt %d), retrying in %.1f s: %s", what, attempt, delay, error
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: Backoff.delays() is endless")
