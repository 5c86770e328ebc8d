"""``processors.member_state``: member profile and positive-engagement history."""

from __future__ import annotations

from typing import Any

import pytest

from processors import member_state
from processors.member_state import (
    POSITIVE_ACTIONS,
    HistoryItem,
    MemberState,
    on_engagement,
    on_profile,
)
from processors.prompts import MEMBER_PROMPT_VERSION, render_member_prompt
from schemas import Action, MemberEngagement, MemberProfile

NOW = 1_700_001_000_000


def profile(updated_at_ms: int = 1_000, **overrides: Any) -> MemberProfile:
    fields: dict[str, Any] = {
        "schema_version": 1,
        "member_id": "m1",
        "updated_at_ms": updated_at_ms,
        "headline": "Data engineer",
    }
    return MemberProfile(**{**fields, **overrides})


def engaged(
    post_id: str, ts_ms: int, action: Action = "like", **overrides: Any
) -> MemberEngagement:
    fields: dict[str, Any] = {
        "member_id": "m1",
        "post_id": post_id,
        "action": action,
        "ts_ms": ts_ms,
        "post_summary": f"about {post_id}",
    }
    return MemberEngagement(**{**fields, **overrides})


def history_of(state: MemberState) -> list[tuple[str, int]]:
    return [(h.post_id, h.ts_ms) for h in state.history]


def play(events: list[MemberEngagement], state: MemberState | None = None) -> MemberState:
    for event in events:
        state = on_engagement(state, event, NOW).state
    assert state is not None
    return state


def test_positive_actions() -> None:
    assert frozenset({"like", "comment", "share", "long_dwell"}) == POSITIVE_ACTIONS


# --- profiles ------------------------------------------------------------------------------


def test_first_profile_publishes_version_one() -> None:
    decision = on_profile(None, profile(), NOW)
    assert decision.state == MemberState(member_id="m1", version=1, profile=profile())
    prompt = decision.prompt
    assert prompt is not None
    assert (prompt.entity, prompt.entity_id, prompt.op, prompt.version) == (
        "member",
        "m1",
        "upsert",
        1,
    )
    assert prompt.text == "member\nheadline: Data engineer"
    assert prompt.prompt_version == MEMBER_PROMPT_VERSION
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_000, NOW)
    assert prompt.attrs == {}


def test_newer_profile_replaces_and_bumps_version() -> None:
    state = on_profile(None, profile(), NOW).state
    newer = profile(2_000, headline="Staff engineer")
    decision = on_profile(state, newer, NOW)
    assert decision.state.version == 2
    assert decision.state.profile == newer
    assert decision.prompt is not None
    assert decision.prompt.text == "member\nheadline: Staff engineer"
    assert decision.prompt.event_time_ms == 2_000


@pytest.mark.parametrize("updated_at_ms", [999, 1_000])
def test_older_or_equal_profile_changes_nothing(updated_at_ms: int) -> None:
    state = on_profile(None, profile(), NOW).state
    decision = on_profile(state, profile(updated_at_ms, headline="stale"), NOW)
    assert decision.prompt is None
    assert decision.state == state


def test_profile_keeps_existing_history() -> None:
    state = play([engaged("p1", 10)])
    decision = on_profile(state, profile(), NOW)
    assert history_of(decision.state) == [("p1", 10)]
    assert decision.state.version == 2
    assert decision.prompt is not None
    assert decision.prompt.text == "member\nheadline: Data engineer\nengaged with: about p1"


# --- engagements ---------------------------------------------------------------------------


@pytest.mark.parametrize("action", sorted(POSITIVE_ACTIONS))
def test_positive_engagement_enters_history(action: Action) -> None:
    decision = on_engagement(None, engaged("p1", 10, action), NOW)
    assert decision.state.history == (
        HistoryItem(post_id="p1", action=action, ts_ms=10, summary="about p1"),
    )
    assert decision.state.version == 1
    assert decision.prompt is not None
    assert decision.prompt.text == "member\nengaged with: about p1"
    assert (decision.prompt.version, decision.prompt.event_time_ms) == (1, 10)


@pytest.mark.parametrize("action", ["impression", "click", "skip"])
def test_non_positive_engagement_changes_nothing(action: Action) -> None:
    state = play([engaged("p1", 10)])
    decision = on_engagement(state, engaged("p2", 20, action), NOW)
    assert decision.prompt is None
    assert decision.state == state
    assert on_engagement(None, engaged("p2", 20, action), NOW).prompt is None


def test_custom_positive_set_is_honoured() -> None:
    decision = on_engagement(None, engaged("p1", 10, "click"), NOW, positive=frozenset({"click"}))
    assert history_of(decision.state) == [("p1", 10)]


def test_repeat_engagement_with_same_post_is_deduplicated() -> None:
    state = play([engaged("p1", 10, "like")])
    decision = on_engagement(state, engaged("p1", 50, "share"), NOW)
    assert decision.prompt is None
    assert decision.state == state


def test_out_of_order_engagements_are_kept_chronological() -> None:
    state = play([engaged("p3", 30), engaged("p1", 10), engaged("p4", 40), engaged("p2", 20)])
    assert history_of(state) == [("p1", 10), ("p2", 20), ("p3", 30), ("p4", 40)]
    assert state.version == 4


def test_prompt_lists_summaries_oldest_first_and_skips_missing_ones() -> None:
    state = play([engaged("p2", 20), engaged("p1", 10), engaged("p9", 15, post_summary=None)])
    prompt = on_profile(state, profile(), NOW).prompt
    assert prompt is not None
    assert prompt.text.endswith("engaged with: about p1 || about p2")


def test_prompt_text_matches_the_template_for_long_history() -> None:
    state = play([engaged(f"p{i}", i) for i in range(25)])
    decision = on_engagement(state, engaged("p25", 25), NOW)
    assert decision.prompt is not None
    summaries = [f"about p{i}" for i in range(26)]
    assert decision.prompt.text == render_member_prompt(None, summaries)
    assert decision.prompt.text.endswith("about p24 || about p25")


def test_history_is_capped_keeping_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(member_state, "MAX_HISTORY", 3)
    state = play([engaged("p1", 10), engaged("p2", 20), engaged("p3", 30), engaged("p5", 50)])
    assert history_of(state) == [("p2", 20), ("p3", 30), ("p5", 50)]
    decision = on_engagement(state, engaged("p4", 40), NOW)
    assert history_of(decision.state) == [("p3", 30), ("p4", 40), ("p5", 50)]
    assert decision.state.version == 5


def test_default_cap_is_one_thousand() -> None:
    assert member_state.MAX_HISTORY == 1_000
    items = tuple(HistoryItem(post_id=f"p{i}", action="like", ts_ms=i) for i in range(1_000))
    state = MemberState(member_id="m1", version=7, history=items)
    decision = on_engagement(state, engaged("new", 5_000), NOW)
    assert len(decision.state.history) == 1_000
    assert decision.state.history[0].post_id == "p1"
    assert decision.state.history[-1].post_id == "new"
    assert decision.state.version == 8


def test_engagement_older_than_a_full_history_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(member_state, "MAX_HISTORY", 3)
    state = play([engaged("p2", 20), engaged("p3", 30), engaged("p4", 40)])
    decision = on_engagement(state, engaged("p1", 10), NOW)
    assert decision.prompt is None
    assert decision.state == state


def test_state_survives_a_json_round_trip_like_a_faust_table() -> None:
    state = on_profile(play([engaged("p1", 10, "share")]), profile(), NOW).state
    assert MemberState.model_validate(state.model_dump(mode="json")) == state
