"""Training sequences for the GR: each member's engagement log as history steps, with the
follow-ups of every impression as its task labels.

A follow-up (click, skip, long dwell, like, comment, share) labels the member's most recent
impression of the same post. Every logged event is also a history step, so a causal model
predicting at an impression sees only what happened before it, as at serving time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple, cast

import numpy as np

from models.gr.config import GRConfig
from models.gr.features import PostAttrs, StepFeatures, history_features
from processors.engagement_history import HistoryEvent
from schemas import Action


class PostCatalog(NamedTuple):
    """Post embeddings and attributes by row; ``rows`` maps post id → row."""

    rows: dict[str, int]
    embeddings: np.ndarray
    """(P, E) float32, L2-normalised."""
    authors: list[str | None]
    formats: list[str | None]

    def attrs(self, rows: np.ndarray) -> PostAttrs:
        """Attributes of ``rows`` (-1 = unknown post: no author, no format)."""
        return PostAttrs(
            authors=[self.authors[r] if r >= 0 else None for r in rows],
            formats=[self.formats[r] if r >= 0 else None for r in rows],
        )

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """(..., E) embeddings of ``rows``; zeros where a row is -1."""
        out = self.embeddings[np.maximum(rows, 0)]
        out[rows < 0] = 0.0
        return out


class MemberSequence(NamedTuple):
    """One member's log as ``S`` steps, oldest first."""

    member_id: str
    post_rows: np.ndarray
    """(S,) int64 catalog row of each step's post, -1 if not in the catalog."""
    steps: StepFeatures
    labels: np.ndarray
    """(S, N) float32 task labels; meaningful where ``is_impression``."""
    is_impression: np.ndarray
    """(S,) bool: the steps that are prediction targets."""
    ts_ms: np.ndarray
    """(S,) int64 event times."""
    profile: np.ndarray
    """(E,) float32 member profile embedding (zeros if unknown)."""


def group_by_member(rows: Iterable[Mapping[str, object]]) -> dict[str, list[HistoryEvent]]:
    """Engagement rows (member_id, post_id, action, ts_ms, device) → each member's events in
    time order (stable: same-millisecond events keep their log order)."""
    members: dict[str, list[HistoryEvent]] = {}
    for row in rows:
        device = row.get("device")
        event = HistoryEvent(
            post_id=str(row["post_id"]),
            action=cast(Action, row["action"]),
            ts_ms=int(row["ts_ms"]),  # type: ignore[call-overload]
            device=device if isinstance(device, str) else None,
        )
        members.setdefault(str(row["member_id"]), []).append(event)
    for events in members.values():
        events.sort(key=lambda e: e.ts_ms)
    return members


def member_sequence(
    member_id: str,
    events: list[HistoryEvent],
    catalog: PostCatalog,
    profile: np.ndarray,
    config: GRConfig,
) -> MemberSequence:
    """The member's steps, features and labels."""
    rows = np.fromiter((catalog.rows.get(e.post_id, -1) for e in events), np.int64, len(events))
    steps, _ = history_features(events, catalog.attrs(rows), config)
    labels, is_impression = _labels(events, config)
    ts = np.fromiter((e.ts_ms for e in events), np.int64, len(events))
    return MemberSequence(member_id, rows, steps, labels, is_impression, ts, profile)


def _labels(events: list[HistoryEvent], config: GRConfig) -> tuple[np.ndarray, np.ndarray]:
    tasks = {t: i for i, t in enumerate(config.tasks)}
    labels = np.zeros((len(events), len(tasks)), np.float32)  # (S, N)
    is_impression = np.zeros(len(events), np.bool_)  # (S,)
    last_impression: dict[str, int] = {}
    for i, event in enumerate(events):
        if event.action == "impression":
            is_impression[i] = True
            last_impression[event.post_id] = i
        elif event.action in tasks and event.post_id in last_impression:
            labels[last_impression[event.post_id], tasks[event.action]] = 1.0
    return labels, is_impression


def windows(length: int, size: int) -> list[tuple[int, int, int]]:
    """Cover ``length`` steps with windows of at most ``size``: ``(start, end, first)`` where
    positions ``first..end`` of a window are its targets, so each step is a target exactly once
    and (after the first window) has at least ``size // 2`` steps of context."""
    spans: list[tuple[int, int, int]] = []
    covered, start = 0, 0
    while covered < length:
        end = min(start + size, length)
        start = max(0, end - size)
        spans.append((start, end, covered))
        covered, start = end, end - size // 2
    return spans
