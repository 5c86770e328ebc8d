"""``processors.member_state``: profile, positive history, hard negatives and the debounce."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any

import pytest

from processors.member_state import (
    HistoryItem,
    Impression,
    MemberHistory,
    MemberNegatives,
    MemberState,
    add_impression,
    add_positive,
    drop_negative,
    flush,
    newer_profile,
    on_change,
)
from processors.prompts import PromptConfig, PromptLibrary
from processors.reembed import ReembedPolicy, Trigger
from processors.token_budget import TokenMeter
from schemas import Action, MemberEngagement, MemberProfile

NOW = 1_700_001_000_000
POLICY = ReembedPolicy()


@pytest.fixture(scope="module")
def library(meter: TokenMeter) -> PromptLibrary:
    return PromptLibrary(PromptConfig(), meter)


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


def play(
    events: list[MemberEngagement],
    history: MemberHistory | None = None,
    policy: ReembedPolicy = POLICY,
    summaries_kept: int = 50,
) -> MemberHistory:
    history = history or MemberHistory()
    for event in events:
        history = add_positive(history, event, policy, summaries_kept) or history
    return history


def ids(history: MemberHistory | MemberNegatives) -> list[tuple[str, int]]:
    return [(h.post_id, h.ts_ms) for h in history.items]


# --- positive history ------------------------------------------------------------------------


def test_positive_engagement_enters_history() -> None:
    history = add_positive(MemberHistory(), engaged("p1", 10, "share"), POLICY, 50)
    assert history == MemberHistory(
        items=(HistoryItem(post_id="p1", action="share", ts_ms=10, summary="about p1"),)
    )


def test_out_of_order_engagements_are_kept_in_time_order() -> None:
    history = play([engaged("p3", 30), engaged("p1", 10), engaged("p4", 40), engaged("p2", 20)])
    assert ids(history) == [("p1", 10), ("p2", 20), ("p3", 30), ("p4", 40)]
    assert history.summaries() == ["about p1", "about p2", "about p3", "about p4"]


def test_equal_timestamps_keep_arrival_order() -> None:
    assert ids(play([engaged("a", 5), engaged("b", 5), engaged("c", 5)])) == [
        ("a", 5),
        ("b", 5),
        ("c", 5),
    ]


def test_repeat_engagement_with_the_same_post_is_deduplicated() -> None:
    history = play([engaged("p1", 10, "like")])
    assert add_positive(history, engaged("p1", 50, "share"), POLICY, 50) is None
    assert add_positive(history, engaged("p1", 5, "comment"), POLICY, 50) is None


def test_history_is_capped_keeping_the_newest() -> None:
    small = ReembedPolicy(history_kept=3)
    history = play([engaged(f"p{t}", t) for t in (10, 20, 30, 50)], policy=small)
    assert ids(history) == [("p20", 20), ("p30", 30), ("p50", 50)]
    history = play([engaged("p40", 40)], history, policy=small)
    assert ids(history) == [("p30", 30), ("p40", 40), ("p50", 50)]


def test_engagement_older_than_a_full_history_changes_nothing() -> None:
    small = ReembedPolicy(history_kept=3)
    history = play([engaged("p2", 20), engaged("p3", 30), engaged("p4", 40)], policy=small)
    assert add_positive(history, engaged("p1", 10), small, 50) is None


def test_default_cap_is_one_thousand() -> None:
    items = tuple(HistoryItem(post_id=f"p{i}", action="like", ts_ms=i) for i in range(1_000))
    history = add_positive(MemberHistory(items=items), engaged("new", 5_000), POLICY, 50)
    assert history is not None
    assert len(history.items) == 1_000
    assert (history.items[0].post_id, history.items[-1].post_id) == ("p1", "new")


def test_summaries_are_kept_only_for_the_newest() -> None:
    history = play([engaged(f"p{t}", t) for t in (5, 1, 4, 2, 3)], summaries_kept=2)
    assert [h.summary for h in history.items] == [None, None, None, "about p4", "about p5"]
    assert history.summaries() == ["about p4", "about p5"]
    # an old engagement arriving late lands outside the window: no summary kept
    history = play([engaged("p0", 0)], history, summaries_kept=2)
    assert history.items[0] == HistoryItem(post_id="p0", action="like", ts_ms=0)
    assert history.summaries() == ["about p4", "about p5"]


def test_summaries_skip_posts_unknown_when_engaged() -> None:
    history = play([engaged("p1", 1), engaged("p2", 2, post_summary=None), engaged("p3", 3)])
    assert history.summaries() == ["about p1", "about p3"]


# --- hard negatives --------------------------------------------------------------------------


def test_impression_becomes_a_negative() -> None:
    negatives = add_impression(MemberNegatives(), MemberHistory(), engaged("p1", 10), POLICY)
    assert negatives == MemberNegatives(items=(Impression(post_id="p1", ts_ms=10),))


def test_impression_of_a_positively_engaged_post_is_not_a_negative() -> None:
    history = play([engaged("p1", 10)])
    assert (
        add_impression(MemberNegatives(), history, engaged("p1", 5, "impression"), POLICY) is None
    )


def test_repeated_impression_is_not_added_twice() -> None:
    negatives = MemberNegatives(items=(Impression(post_id="p1", ts_ms=10),))
    assert add_impression(negatives, MemberHistory(), engaged("p1", 20), POLICY) is None


def test_negatives_are_capped_keeping_the_newest() -> None:
    small = ReembedPolicy(negatives_kept=2)
    negatives = MemberNegatives()
    for i in range(4):
        event = engaged(f"p{i}", i, "impression")
        negatives = add_impression(negatives, MemberHistory(), event, small) or negatives
    assert ids(negatives) == [("p2", 2), ("p3", 3)]


def test_negatives_kept_zero_keeps_none() -> None:
    none_kept = ReembedPolicy(negatives_kept=0)
    negatives = add_impression(MemberNegatives(), MemberHistory(), engaged("p1", 1), none_kept)
    assert negatives is None or negatives.items == ()


def test_positive_engagement_removes_the_negative() -> None:
    negatives = MemberNegatives(
        items=(Impression(post_id="p1", ts_ms=1), Impression(post_id="p2", ts_ms=2))
    )
    assert drop_negative(negatives, "p1") == MemberNegatives(
        items=(Impression(post_id="p2", ts_ms=2),)
    )
    assert drop_negative(negatives, "p9") is None


# --- profiles --------------------------------------------------------------------------------


def test_first_profile_is_adopted() -> None:
    assert newer_profile(None, profile()) == MemberState(member_id="m1", profile=profile())


def test_newer_profile_replaces_and_keeps_the_rest() -> None:
    state = MemberState(member_id="m1", version=4, profile=profile(), last_prompt_ms=7)
    newer = newer_profile(state, profile(2_000, headline="Staff engineer"))
    assert newer == state.model_copy(update={"profile": profile(2_000, headline="Staff engineer")})


@pytest.mark.parametrize("updated_at_ms", [999, 1_000])
def test_older_or_equal_profile_is_stale(updated_at_ms: int) -> None:
    state = newer_profile(None, profile())
    assert newer_profile(state, profile(updated_at_ms, headline="stale")) is None


# --- publishing and the debounce -------------------------------------------------------------


def test_first_change_publishes_at_once(library: PromptLibrary) -> None:
    state = MemberState(member_id="m1", profile=profile())
    history = play([engaged("p1", 10)])
    decision = on_change(state, history, "profile", 1_000, library, POLICY, NOW)
    assert decision.reason == "profile"
    assert decision.state == state.model_copy(update={"version": 1, "last_prompt_ms": NOW})
    prompt = decision.prompt
    assert prompt is not None
    assert (prompt.entity, prompt.entity_id, prompt.op, prompt.version) == (
        "member",
        "m1",
        "upsert",
        1,
    )
    assert prompt.text == "member | headline: Data engineer\nengaged with: about p1"
    assert prompt.text == library.render_member(profile(), history.summaries())
    assert prompt.prompt_version == library.member_version
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_000, NOW)
    assert prompt.attrs == {}


def test_changes_within_the_debounce_are_held(library: PromptLibrary) -> None:
    published = on_change(
        MemberState(member_id="m1"), MemberHistory(), "engagement", 1, library, POLICY, NOW
    )
    held = on_change(
        published.state, MemberHistory(), "engagement", 2_000, library, POLICY, NOW + 1_000
    )
    assert (held.prompt, held.reason) == (None, "debounced")
    assert held.state == published.state.model_copy(update={"pending_since_ms": 2_000})
    again = on_change(held.state, MemberHistory(), "profile", 3_000, library, POLICY, NOW + 4_999)
    assert (again.prompt, again.reason) == (None, "debounced")
    assert again.state.pending_since_ms == 2_000  # the oldest held change


def test_a_change_after_the_debounce_publishes_and_clears_what_was_held(
    library: PromptLibrary,
) -> None:
    state = MemberState(member_id="m1", version=1, last_prompt_ms=NOW, pending_since_ms=2_000)
    decision = on_change(state, MemberHistory(), "engagement", 3_000, library, POLICY, NOW + 5_000)
    assert (decision.reason, decision.state.version, decision.state.pending_since_ms) == (
        "engagement",
        2,
        None,
    )
    assert decision.prompt is not None
    assert decision.prompt.event_time_ms == 3_000  # not before the newest change it carries


@pytest.mark.parametrize("reason", ["profile", "engagement"])
def test_a_prompt_without_held_changes_counts_from_its_event(
    library: PromptLibrary, reason: Trigger
) -> None:
    state = MemberState(member_id="m1", version=1, last_prompt_ms=NOW)
    decision = on_change(state, MemberHistory(), reason, 7_000, library, POLICY, NOW + 5_000)
    assert decision.prompt is not None
    assert (decision.reason, decision.prompt.event_time_ms) == (reason, 7_000)


def test_flush_publishes_the_held_change_once_the_period_ends(library: PromptLibrary) -> None:
    state = MemberState(
        member_id="m1", version=1, profile=profile(), last_prompt_ms=NOW, pending_since_ms=2_000
    )
    history = play([engaged("p1", 10)])
    assert flush(state, history, library, POLICY, NOW + 4_999) is None
    decision = flush(state, history, library, POLICY, NOW + 5_000)
    assert decision is not None
    assert decision.reason == "debounce_flush"
    assert decision.state == state.model_copy(
        update={"version": 2, "last_prompt_ms": NOW + 5_000, "pending_since_ms": None}
    )
    assert decision.prompt is not None
    assert (decision.prompt.version, decision.prompt.event_time_ms) == (2, 2_000)
    assert decision.prompt.prompted_at_ms == NOW + 5_000
    assert decision.prompt.text == "member | headline: Data engineer\nengaged with: about p1"
    assert flush(decision.state, history, library, POLICY, NOW + 60_000) is None


def test_flush_without_a_held_change_does_nothing(library: PromptLibrary) -> None:
    state = MemberState(member_id="m1", version=3, last_prompt_ms=1)
    assert flush(state, MemberHistory(), library, POLICY, NOW) is None


def test_state_survives_a_json_round_trip_like_a_faust_table() -> None:
    state = MemberState(
        member_id="m1", version=2, profile=profile(), last_prompt_ms=5, pending_since_ms=3
    )
    assert MemberState.model_validate(state.model_dump(mode="json")) == state
    history = play([engaged("p1", 1, "long_dwell"), engaged("p2", 2, post_summary=None)])
    assert MemberHistory.model_validate(history.model_dump(mode="json")) == history
    negatives = MemberNegatives(items=(Impression(post_id="p1", ts_ms=1),))
    assert MemberNegatives.model_validate(negatives.model_dump(mode="json")) == negatives
