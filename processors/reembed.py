"""When an entity is worth embedding again, and why (or why not).

Posts: on creation and on every edit; after that only when one of its percentile buckets moved
by at least ``bucket_step`` points since the last prompt, and no sooner than
``post_min_interval_ms`` after it. A suppressed move is reconsidered at the post's next
engagement. Members: on a profile change or a new positive engagement, debounced: the first
change after a quiet period is published at once, later ones within ``member_debounce_ms``
are held and flushed together when the period ends (leading and trailing edge).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from schemas import Action

POSITIVE_ACTIONS: frozenset[Action] = frozenset({"like", "comment", "share", "long_dwell"})

Trigger = Literal[
    "created", "edited", "deleted", "bucket_moved", "profile", "engagement", "debounce_flush"
]
Suppression = Literal["below_step", "min_interval", "post_deleted", "debounced", "stale_profile"]


@dataclass(frozen=True)
class ReembedPolicy:
    """Thresholds of the re-embedding policy (defaults are the documented ones)."""

    bucket_step: int = 10
    """Percentile points a bucket must move to re-embed a post."""
    post_min_interval_ms: int = 60_000
    member_debounce_ms: int = 5_000
    positive_actions: frozenset[Action] = field(default=POSITIVE_ACTIONS)
    history_kept: int = 1_000
    """Positive engagements kept per member (for ranking); prompts list fewer."""
    negatives_kept: int = 200
    """Impressions without a positive engagement kept per member (hard negatives)."""


def largest_move(before: Mapping[str, int], now: Mapping[str, int]) -> int:
    """The largest change of any feature's percentile (a feature new to ``now`` counts fully)."""
    return max((abs(now[f] - before.get(f, 0)) for f in now), default=0)


def post_decision(
    policy: ReembedPolicy,
    before: Mapping[str, int],
    now: Mapping[str, int],
    last_prompt_ms: int,
    now_ms: int,
) -> Trigger | Suppression:
    """``bucket_moved`` or why not: ``below_step`` / ``min_interval``."""
    if largest_move(before, now) < policy.bucket_step:
        return "below_step"
    if now_ms - last_prompt_ms < policy.post_min_interval_ms:
        return "min_interval"
    return "bucket_moved"


def member_due(policy: ReembedPolicy, last_prompt_ms: int, now_ms: int) -> bool:
    """Whether a member's debounce period has ended."""
    return now_ms - last_prompt_ms >= policy.member_debounce_ms
