"""Each member's recent engagements, in time order, for the sequential ranker.

Events arrive from several partitions (``engagements`` is keyed by post, so one member's
actions are spread over all of them) and are replayed at least once, so ``MemberHistories``
orders by ``ts_ms`` on insert and ignores exact repeats. Appending in time order, the common
case, is O(1) amortised; a late event is placed by binary search. Only the newest
``max_steps`` events of a member are kept.

Example::

    histories = MemberHistories(max_steps=1_000)
    histories.add_engagement(engagement)
    histories.get("m1")  # [HistoryEvent(post_id="p1", action="like", ts_ms=..., device=None)]
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Collection
from typing import NamedTuple

from schemas import Action, Engagement

DEFAULT_MAX_STEPS = 1_000


class HistoryEvent(NamedTuple):
    """One step of a member's history."""

    post_id: str
    """The post acted on."""
    action: Action
    """What the member did (impression, click, skip, long_dwell, like, comment, share)."""
    ts_ms: int
    """When, in epoch milliseconds (event time, not arrival time)."""
    device: str | None
    """The device the action came from, when the producer said."""

    @classmethod
    def from_engagement(cls, engagement: Engagement) -> HistoryEvent:
        """The history step of a decoded ``Engagement`` (its member is the history's key)."""
        return cls(engagement.post_id, engagement.action, engagement.ts_ms, engagement.device)

    def same_delivery(self, other: HistoryEvent) -> bool:
        """Whether ``other`` is a replay of this event (same post, action and time)."""
        return (self.post_id, self.action, self.ts_ms) == (other.post_id, other.action, other.ts_ms)


class MemberHistories:
    """Thread-safe map of member id → that member's newest events, oldest first.

    Members are never evicted: memory grows with the number of members seen, each holding at
    most ``max_steps`` events.
    """

    def __init__(self, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.max_steps = max_steps
        self._lock = threading.Lock()
        self._members: dict[str, deque[HistoryEvent]] = {}
        self._steps = 0

    def add(self, member_id: str, event: HistoryEvent) -> None:
        """Insert ``event`` in ``ts_ms`` order (after events with the same time); ignore it
        when it repeats a held event; drop the oldest event when over ``max_steps``."""
        with self._lock:
            events = self._members.setdefault(member_id, deque())
            in_order = not events or events[-1].ts_ms <= event.ts_ms
            at = len(events) if in_order else bisect.bisect_right(events, event.ts_ms, key=_ts)
            if _repeats(events, at, event):
                return
            if in_order:
                events.append(event)  # the common case: no search, no shifting
            else:
                events.insert(at, event)
            self._steps += 1
            if len(events) > self.max_steps:
                events.popleft()
                self._steps -= 1

    def add_engagement(self, engagement: Engagement) -> None:
        """Add a decoded ``Engagement`` to its member's history."""
        self.add(engagement.member_id, HistoryEvent.from_engagement(engagement))

    def get(self, member_id: str) -> list[HistoryEvent]:
        """A copy of the member's events, oldest first (``[]`` for a member never seen)."""
        with self._lock:
            return list(self._members.get(member_id, ()))

    def latest_post(self, member_id: str, actions: Collection[Action]) -> str | None:
        """The post of the member's newest event whose action is in ``actions`` (None if
        there is none), found without copying the history."""
        with self._lock:
            for event in reversed(self._members.get(member_id, ())):
                if event.action in actions:
                    return event.post_id
        return None

    def steps(self) -> int:
        """Events held, summed over members."""
        with self._lock:
            return self._steps

    def clear(self) -> None:
        """Forget every member."""
        with self._lock:
            self._members.clear()
            self._steps = 0

    def __len__(self) -> int:
        """Members held."""
        with self._lock:
            return len(self._members)


def _ts(event: HistoryEvent) -> int:
    return event.ts_ms


def _repeats(events: deque[HistoryEvent], at: int, event: HistoryEvent) -> bool:
    """Whether one of the events just before ``at`` with the same ``ts_ms`` is ``event``."""
    i = at - 1
    while i >= 0 and events[i].ts_ms == event.ts_ms:
        if events[i].same_delivery(event):
            return True
        i -= 1
    return False
