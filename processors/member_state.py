"""Member-side logic of the prompt processor: profile, positive history, hard negatives.

Only positive engagements (``ReembedPolicy.positive_actions``) enter the history, one entry
per post, in time order, capped at ``history_kept`` (the published finding: same or better
quality at a fraction of the memory). Impressions the member never engaged with positively
are kept apart, as hard-negative material for training. Summaries are stored only for the
newest entries a prompt can show, which keeps the 1,000-entry history small.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from processors.prompts import PromptLibrary
from processors.reembed import ReembedPolicy, Suppression, Trigger, member_due
from schemas import Action, MemberEngagement, MemberProfile, PromptRequest


class HistoryItem(BaseModel):
    """One positively engaged post."""

    model_config = ConfigDict(frozen=True)

    post_id: str
    action: Action
    ts_ms: int
    summary: str | None = None


class Impression(BaseModel):
    """A post shown to the member without a positive engagement (a hard negative)."""

    model_config = ConfigDict(frozen=True)

    post_id: str
    ts_ms: int


class MemberHistory(BaseModel):
    """Positive engagements, oldest first (a Faust table value)."""

    model_config = ConfigDict(frozen=True)

    items: tuple[HistoryItem, ...] = ()

    def summaries(self) -> list[str]:
        """Summaries of engaged posts, oldest first (posts unknown when engaged are skipped)."""
        return [h.summary for h in self.items if h.summary]


class MemberNegatives(BaseModel):
    """Impressions without positive engagement, oldest first (a Faust table value)."""

    model_config = ConfigDict(frozen=True)

    items: tuple[Impression, ...] = ()


class MemberState(BaseModel):
    """Profile and publishing state of one member (a Faust table value)."""

    model_config = ConfigDict(frozen=True)

    member_id: str
    version: int = 0
    profile: MemberProfile | None = None
    last_prompt_ms: int = 0
    pending_since_ms: int | None = None
    """Event time of the oldest change held back by the debounce, or None."""


@dataclass(frozen=True)
class MemberDecision:
    """The member's new state, the prompt to publish (if any), and why."""

    state: MemberState
    prompt: PromptRequest | None
    reason: Trigger | Suppression


def add_positive(
    history: MemberHistory, event: MemberEngagement, policy: ReembedPolicy, summaries_kept: int
) -> MemberHistory | None:
    """The history with ``event`` inserted in time order; None when nothing changed
    (a repeat of an engaged post, or older than a full history)."""
    if any(h.post_id == event.post_id for h in history.items):
        return None
    item = HistoryItem(
        post_id=event.post_id, action=event.action, ts_ms=event.ts_ms, summary=event.post_summary
    )
    items = list(history.items)
    bisect.insort(items, item, key=lambda h: h.ts_ms)
    if len(items) > policy.history_kept and items[0] is item:
        return None
    items = items[-policy.history_kept :]
    cut = len(items) - summaries_kept
    items = [h.model_copy(update={"summary": None}) if i < cut else h for i, h in enumerate(items)]
    return MemberHistory(items=tuple(items))


def add_impression(
    negatives: MemberNegatives,
    history: MemberHistory,
    event: MemberEngagement,
    policy: ReembedPolicy,
) -> MemberNegatives | None:
    """Negatives with the impressed post added; None if it is already known either way."""
    seen = {n.post_id for n in negatives.items} | {h.post_id for h in history.items}
    if event.post_id in seen or policy.negatives_kept == 0:
        return None
    items = (*negatives.items, Impression(post_id=event.post_id, ts_ms=event.ts_ms))
    return MemberNegatives(items=items[len(items) - policy.negatives_kept :])


def drop_negative(negatives: MemberNegatives, post_id: str) -> MemberNegatives | None:
    """Negatives without ``post_id`` (it got a positive engagement); None if absent."""
    kept = tuple(n for n in negatives.items if n.post_id != post_id)
    return None if len(kept) == len(negatives.items) else MemberNegatives(items=kept)


def newer_profile(state: MemberState | None, profile: MemberProfile) -> MemberState | None:
    """The state with ``profile`` adopted, or None if it is not newer than the one held."""
    current = state or MemberState(member_id=profile.member_id)
    if current.profile is not None and profile.updated_at_ms <= current.profile.updated_at_ms:
        return None
    return current.model_copy(update={"profile": profile})


def on_change(
    state: MemberState,
    history: MemberHistory,
    reason: Trigger,
    event_time_ms: int,
    library: PromptLibrary,
    policy: ReembedPolicy,
    now_ms: int,
) -> MemberDecision:
    """Publish now if the debounce period is over, else hold the change (``debounced``).

    ``event_time_ms`` is the time of the causing event (the profile's ``updated_at_ms``, the
    engagement's ``ts_ms``) and becomes the prompt's event time, from which the index counts
    freshness. A prompt published now carries that time even when it also carries a change
    held earlier: the training export reads member prompts "as of" their event time, and an
    earlier stamp would show engagements that had not happened yet. A flush (`flush`) has no
    single causing event and carries the oldest held change's time, the longest any of its
    changes waited."""
    if not member_due(policy, state.last_prompt_ms, now_ms):
        since = state.pending_since_ms if state.pending_since_ms is not None else event_time_ms
        return MemberDecision(
            state.model_copy(update={"pending_since_ms": since}), None, "debounced"
        )
    return _publish(state, history, reason, event_time_ms, library, now_ms)


def flush(
    state: MemberState,
    history: MemberHistory,
    library: PromptLibrary,
    policy: ReembedPolicy,
    now_ms: int,
) -> MemberDecision | None:
    """Publish a held change once its debounce period is over; None if nothing is due."""
    if state.pending_since_ms is None or not member_due(policy, state.last_prompt_ms, now_ms):
        return None
    return _publish(state, history, "debounce_flush", state.pending_since_ms, library, now_ms)


def _publish(
    state: MemberState,
    history: MemberHistory,
    reason: Trigger,
    event_time_ms: int,
    library: PromptLibrary,
    now_ms: int,
) -> MemberDecision:
    new = state.model_copy(
        update={"version": state.version + 1, "last_prompt_ms": now_ms, "pending_since_ms": None}
    )
    prompt = PromptRequest(
        entity="member",
        entity_id=state.member_id,
        version=new.version,
        text=library.render_member(state.profile, history.summaries()),
        prompt_version=library.member_version,
        event_time_ms=event_time_ms,
        prompted_at_ms=now_ms,
    )
    return MemberDecision(new, prompt, reason)
