"""Features of history steps and candidates, shared by training and serving.

CPU work that prepares the model's input (the published system keeps it off the GPU): action
and device indices, time-gap buckets, and the member's affinity counts. The same functions
build training sequences and serving requests, so both see identical features.

Example:
    >>> gap_buckets(np.array([-1, 0, 999, 1_000, 3_600_000]), 24).tolist()
    [0, 1, 1, 2, 12]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from models.gr.config import GRConfig
from processors.engagement_history import HistoryEvent

NO_PREVIOUS = -1
"""Gap value of a step with no earlier step (bucket 0)."""


def gap_buckets(gaps_ms: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket time gaps on a log2 scale of seconds: 0 = no previous step, then
    ``1 + floor(log2(1 + seconds))`` capped at ``n_buckets - 1``."""
    seconds = np.maximum(gaps_ms, 0) // 1_000
    buckets = 1 + np.floor(np.log2(1.0 + seconds)).astype(np.int64)
    return np.where(gaps_ms < 0, 0, np.minimum(buckets, n_buckets - 1))


def device_index(device: str | None, config: GRConfig) -> int:
    """1 + position in ``config.devices``; 0 for any other or no device."""
    try:
        return 1 + config.devices.index(device or "")
    except ValueError:
        return 0


class AffinityCounter:
    """The member's action counts per post author and per post format, as they accumulate."""

    def __init__(self, config: GRConfig) -> None:
        self._actions = {a: i for i, a in enumerate(config.actions)}
        self._n = len(config.actions)
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def features(self, author: str | None, fmt: str | None) -> np.ndarray:
        """(A,) log1p counts so far: the author's ``n_actions`` then the format's."""
        counts = [self._counts["a", author or "", i] for i in range(self._n)]
        counts += [self._counts["f", fmt or "", i] for i in range(self._n)]
        return np.log1p(np.asarray(counts, dtype=np.float32))

    def add(self, author: str | None, fmt: str | None, action: str) -> None:
        """Count one action on a post by ``author`` in format ``fmt``."""
        index = self._actions[action]
        self._counts["a", author or "", index] += 1
        self._counts["f", fmt or "", index] += 1


class StepFeatures(NamedTuple):
    """Per-step arrays of one sequence (``S`` steps)."""

    action: np.ndarray
    """(S,) int64 action index."""
    gap: np.ndarray
    """(S,) int64 time-gap bucket."""
    device: np.ndarray
    """(S,) int64 device index."""
    affinity: np.ndarray
    """(S, A) float32 affinity before the step."""


class PostAttrs(NamedTuple):
    """What the features need to know about the posts of a sequence, aligned with it."""

    authors: Sequence[str | None]
    formats: Sequence[str | None]


def history_features(
    events: Sequence[HistoryEvent], posts: PostAttrs, config: GRConfig
) -> tuple[StepFeatures, AffinityCounter]:
    """Features of each history step (affinity counted before the step), and the counter
    after the last step (what candidates are scored against)."""
    counter = AffinityCounter(config)
    actions = {a: i for i, a in enumerate(config.actions)}
    ts = np.fromiter((e.ts_ms for e in events), np.int64, len(events))
    gaps = np.full(len(ts), NO_PREVIOUS, np.int64)
    gaps[1:] = np.diff(ts)  # events are in time order
    affinity = np.zeros((len(events), config.affinity_dim), np.float32)  # (S, A)
    for i, (event, author, fmt) in enumerate(
        zip(events, posts.authors, posts.formats, strict=True)
    ):
        affinity[i] = counter.features(author, fmt)
        counter.add(author, fmt, event.action)
    steps = StepFeatures(
        action=np.fromiter((actions[e.action] for e in events), np.int64, len(events)),
        gap=gap_buckets(gaps, config.gap_buckets),
        device=np.fromiter((device_index(e.device, config) for e in events), np.int64, len(events)),
        affinity=affinity,
    )
    return steps, counter


def candidate_features(
    posts: PostAttrs,
    counter: AffinityCounter,
    last_ts_ms: int | None,
    now_ms: int,
    device: str | None,
    config: GRConfig,
) -> StepFeatures:
    """Features of ``K`` candidates shown now: impressions after the whole history."""
    k = len(posts.authors)
    gap = NO_PREVIOUS if last_ts_ms is None else now_ms - last_ts_ms
    affinity = np.zeros((k, config.affinity_dim), np.float32)  # (K, A)
    for i, (author, fmt) in enumerate(zip(posts.authors, posts.formats, strict=True)):
        affinity[i] = counter.features(author, fmt)
    return StepFeatures(
        action=np.full(k, config.actions.index("impression"), np.int64),
        gap=gap_buckets(np.full(k, gap, np.int64), config.gap_buckets),
        device=np.full(k, device_index(device, config), np.int64),
        affinity=affinity,
    )
