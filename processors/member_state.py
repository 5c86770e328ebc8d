"""Member-side logic of the prompt processor: profile and positive-engagement history.

Only positive engagements enter the history (the published system's finding: same or better
quality at a fraction of the memory). The history is chronological, one entry per post, and
capped; every change publishes a new member prompt.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from processors.prompts import MEMBER_PROMPT_VERSION, render_member_prompt
from schemas import Action, MemberEngagement, MemberProfile, PromptRequest

POSITIVE_ACTIONS: frozenset[Action] = frozenset({"like", "comment", "share", "long_dwell"})
MAX_HISTORY = 1_000


class HistoryItem(BaseModel):
    """One positively engaged post in a member's history."""

    model_config = ConfigDict(frozen=True)

    post_id: str
    action: Action
    ts_ms: int
    summary: str | None = None


class MemberState(BaseModel):
    """What the processor remembers about one member (a Faust table value)."""

    model_config = ConfigDict(frozen=True)

    member_id: str
    version: int = 0
    profile: MemberProfile | None = None
    history: tuple[HistoryItem, ...] = ()
    """Oldest first; at most ``MAX_HISTORY`` items, one per post."""


@dataclass(frozen=True)
class MemberDecision:
    """The member's new state and the prompt request to publish, if any."""

    state: MemberState
    prompt: PromptRequest | None


def on_profile(state: MemberState | None, profile: MemberProfile, now_ms: int) -> MemberDecision:
    """Adopt a newer profile and publish a prompt; an older or equal one changes nothing."""
    current = state or MemberState(member_id=profile.member_id)
    if current.profile is not None and profile.updated_at_ms <= current.profile.updated_at_ms:
        return MemberDecision(current, None)
    new = current.model_copy(update={"profile": profile, "version": current.version + 1})
    return MemberDecision(new, _prompt(new, profile.updated_at_ms, now_ms))


def on_engagement(
    state: MemberState | None,
    event: MemberEngagement,
    now_ms: int,
    positive: frozenset[Action] = POSITIVE_ACTIONS,
) -> MemberDecision:
    """Add a positive engagement to the history (in time order) and publish a prompt.

    Non-positive actions and repeats of an already-engaged post change nothing.
    """
    current = state or MemberState(member_id=event.member_id)
    if event.action not in positive or any(h.post_id == event.post_id for h in current.history):
        return MemberDecision(current, None)
    item = HistoryItem(
        post_id=event.post_id, action=event.action, ts_ms=event.ts_ms, summary=event.post_summary
    )
    history = list(current.history)
    bisect.insort(history, item, key=lambda h: h.ts_ms)
    if len(history) > MAX_HISTORY and history[0] is item:  # older than a full history: no-op
        return MemberDecision(current, None)
    new = current.model_copy(
        update={"history": tuple(history[-MAX_HISTORY:]), "version": current.version + 1}
    )
    return MemberDecision(new, _prompt(new, event.ts_ms, now_ms))


def _prompt(state: MemberState, event_time_ms: int, now_ms: int) -> PromptRequest:
    summaries = [h.summary for h in state.history if h.summary]
    return PromptRequest(
        entity="member",
        entity_id=state.member_id,
        version=state.version,
        text=render_member_prompt(state.profile, summaries),
        prompt_version=MEMBER_PROMPT_VERSION,
        event_time_ms=event_time_ms,
        prompted_at_ms=now_ms,
    )
