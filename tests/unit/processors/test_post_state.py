"""``processors.post_state``: post lifecycle, percentile re-embedding and engagement joins."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any

import pytest

from processors.post_state import (
    PostState,
    enrich_engagement,
    on_counts_changed,
    on_post_created,
    on_post_deleted,
    post_attrs,
    revision_time_ms,
)
from processors.prompts import PromptConfig, PromptLibrary
from processors.reembed import ReembedPolicy
from processors.token_budget import TokenMeter
from schemas import Engagement, MemberEngagement, PostCreated, PostDeleted

NOW = 1_700_000_999_000
PCTS = {"views": 50, "likes": 20, "comments": 10, "shares": 5}
POLICY = ReembedPolicy()


@pytest.fixture(scope="module")
def library(meter: TokenMeter) -> PromptLibrary:
    return PromptLibrary(PromptConfig(), meter)


def post(**overrides: Any) -> PostCreated:
    fields: dict[str, Any] = {
        "schema_version": 1,
        "post_id": "p1",
        "author_id": "a1",
        "created_at_ms": 1_700_000_000_000,
        "format": "video",
        "text": "first draft",
        "language": "en",
    }
    return PostCreated(**{**fields, **overrides})


def deleted(**overrides: Any) -> PostDeleted:
    fields: dict[str, Any] = {
        "schema_version": 1,
        "post_id": "p1",
        "deleted_at_ms": 1_700_000_500_000,
    }
    return PostDeleted(**{**fields, **overrides})


def engagement(**overrides: Any) -> Engagement:
    fields: dict[str, Any] = {
        "schema_version": 1,
        "member_id": "m1",
        "post_id": "p1",
        "action": "comment",
        "ts_ms": 1_700_000_100_000,
        "dwell_ms": 4_000,
        "device": "android",
    }
    return Engagement(**{**fields, **overrides})


def created_state(library: PromptLibrary, pcts: dict[str, int] = PCTS) -> PostState:
    return on_post_created(None, post(), pcts, library, NOW).state


# --- create, edit, delete --------------------------------------------------------------------


def test_create_publishes_version_one_with_attrs(library: PromptLibrary) -> None:
    event = post()
    decision = on_post_created(None, event, PCTS, library, NOW)
    assert decision.reason == "created"
    assert decision.state == PostState(
        post_id="p1", version=1, post=event, prompted_percentiles=PCTS, last_prompt_ms=NOW
    )
    prompt = decision.prompt
    assert prompt is not None
    assert (prompt.entity, prompt.entity_id, prompt.op, prompt.version) == (
        "post",
        "p1",
        "upsert",
        1,
    )
    assert prompt.text == library.render_post(event, PCTS)
    assert prompt.text == (
        "post | format: video\n"
        "engagement: views <view_pct>50</view_pct> | likes <like_pct>20</like_pct>"
        " | comments <comment_pct>10</comment_pct> | shares <share_pct>5</share_pct>\n"
        "text: first draft"
    )
    assert prompt.prompt_version == library.post_version
    assert prompt.attrs == {
        "author_id": "a1",
        "format": "video",
        "language": "en",
        "created_at_ms": 1_700_000_000_000,
    }
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_700_000_000_000, NOW)


def test_edit_publishes_version_two_with_the_new_text(library: PromptLibrary) -> None:
    first = created_state(library)
    edited = post(text="second draft", created_at_ms=1_700_000_200_000)
    decision = on_post_created(first, edited, {"views": 90}, library, NOW + 1)
    assert decision.reason == "edited"
    assert (decision.state.version, decision.state.post) == (2, edited)
    assert decision.state.prompted_percentiles == {"views": 90}
    assert decision.state.last_prompt_ms == NOW + 1
    assert decision.prompt is not None
    assert decision.prompt.version == 2
    assert decision.prompt.text == (
        "post | format: video\nengagement: views <view_pct>90</view_pct>\ntext: second draft"
    )
    assert decision.prompt.event_time_ms == 1_700_000_200_000


def test_an_edit_counts_from_its_edit_time(library: PromptLibrary) -> None:
    edited = post(text="second draft", edited_at_ms=1_700_000_400_000)
    decision = on_post_created(created_state(library), edited, PCTS, library, NOW + 1)
    assert decision.reason == "edited"
    assert decision.prompt is not None
    assert decision.prompt.event_time_ms == 1_700_000_400_000
    assert decision.prompt.attrs["created_at_ms"] == 1_700_000_000_000


def test_an_edit_without_edit_time_uses_the_record_time_when_known(library: PromptLibrary) -> None:
    decision = on_post_created(
        created_state(library), post(text="v2"), PCTS, library, NOW, 1_700_000_450_000
    )
    assert decision.prompt is not None
    assert decision.prompt.event_time_ms == 1_700_000_450_000


@pytest.mark.parametrize(
    ("edited_at_ms", "edit", "record_time_ms", "expected"),
    [
        (None, False, None, 1_700_000_000_000),  # a creation: created_at_ms
        (None, False, 1_700_000_000_900, 1_700_000_000_000),  # ... whatever the record says
        (1_700_000_400_000, True, None, 1_700_000_400_000),  # an edit: edited_at_ms
        (1_700_000_400_000, True, 1_700_000_450_000, 1_700_000_400_000),  # ... wins
        (1_700_000_400_000, False, None, 1_700_000_400_000),  # first seen revision is an edit
        (None, True, None, 1_700_000_000_000),  # an older producer's edit: the post's age
        (None, True, 1_700_000_450_000, 1_700_000_450_000),  # ... or the Kafka record time
        (None, True, 1_699_999_000_000, 1_700_000_000_000),  # ... never before the creation
    ],
)
def test_revision_time(
    edited_at_ms: int | None, edit: bool, record_time_ms: int | None, expected: int
) -> None:
    event = post(edited_at_ms=edited_at_ms)
    assert revision_time_ms(event, edit, record_time_ms) == expected


def test_delete_after_edit_publishes_delete_with_version_three(library: PromptLibrary) -> None:
    state = on_post_created(created_state(library), post(text="v2"), PCTS, library, NOW).state
    decision = on_post_deleted(state, deleted(), library, NOW + 5)
    assert decision.reason == "deleted"
    assert (decision.state.deleted, decision.state.version) == (True, 3)
    prompt = decision.prompt
    assert prompt is not None
    assert (prompt.op, prompt.version, prompt.entity_id, prompt.text) == ("delete", 3, "p1", "")
    assert prompt.attrs == {}
    assert prompt.prompt_version == library.post_version
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_700_000_500_000, NOW + 5)


def test_create_after_delete_is_dropped_and_post_stays_deleted(library: PromptLibrary) -> None:
    state = on_post_deleted(created_state(library), deleted(), library, NOW).state
    decision = on_post_created(state, post(text="resurrected"), PCTS, library, NOW)
    assert (decision.prompt, decision.reason) == (None, "post_deleted")
    assert decision.state == state


def test_delete_before_create_drops_the_later_create(library: PromptLibrary) -> None:
    first = on_post_deleted(None, deleted(), library, NOW)
    assert first.state == PostState(post_id="p1", version=1, deleted=True)
    assert first.prompt is not None
    assert (first.prompt.op, first.prompt.version) == ("delete", 1)
    late = on_post_created(first.state, post(), PCTS, library, NOW)
    assert (late.prompt, late.reason, late.state) == (None, "post_deleted", first.state)


def test_repeated_delete_publishes_nothing(library: PromptLibrary) -> None:
    state = on_post_deleted(created_state(library), deleted(), library, NOW).state
    again = on_post_deleted(state, deleted(deleted_at_ms=1_700_000_600_000), library, NOW)
    assert (again.prompt, again.reason, again.state) == (None, "post_deleted", state)
    assert again.state.version == 2


# --- re-embedding on count changes -----------------------------------------------------------


def counts_changed(
    state: PostState | None, library: PromptLibrary, now_ms: int, **pcts: int
) -> Any:
    return on_counts_changed(state, {**PCTS, **pcts}, library, POLICY, 1_700_000_300_000, now_ms)


def test_small_moves_are_below_step(library: PromptLibrary) -> None:
    state = created_state(library)
    decision = counts_changed(state, library, NOW + 3_600_000, views=59, likes=11)
    assert (decision.prompt, decision.reason, decision.state) == (None, "below_step", state)


def test_a_move_within_the_min_interval_waits(library: PromptLibrary) -> None:
    state = created_state(library)
    decision = counts_changed(state, library, NOW + 59_999, views=60)
    assert (decision.prompt, decision.reason, decision.state) == (None, "min_interval", state)


def test_a_bucket_move_after_the_interval_re_embeds(library: PromptLibrary) -> None:
    state = created_state(library)
    decision = counts_changed(state, library, NOW + 60_000, views=60)
    assert decision.reason == "bucket_moved"
    assert decision.state.version == 2
    assert decision.state.prompted_percentiles == {**PCTS, "views": 60}
    assert decision.state.last_prompt_ms == NOW + 60_000
    prompt = decision.prompt
    assert prompt is not None
    assert (prompt.version, prompt.op) == (2, "upsert")
    assert "views <view_pct>60</view_pct>" in prompt.text
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_700_000_300_000, NOW + 60_000)


def test_a_suppressed_move_is_reconsidered_at_the_next_engagement(library: PromptLibrary) -> None:
    state = created_state(library)
    waiting = counts_changed(state, library, NOW + 1_000, likes=0)
    assert waiting.reason == "min_interval"
    later = counts_changed(waiting.state, library, NOW + 61_000, likes=1)
    assert (later.reason, later.state.version) == ("bucket_moved", 2)


def test_a_feature_new_to_the_percentiles_counts_fully(library: PromptLibrary) -> None:
    state = created_state(library)
    assert counts_changed(state, library, NOW + 61_000, followers=9).reason == "below_step"
    assert counts_changed(state, library, NOW + 61_000, followers=10).reason == "bucket_moved"


def test_deleted_post_is_never_re_embedded(library: PromptLibrary) -> None:
    state = on_post_deleted(created_state(library), deleted(), library, NOW).state
    decision = counts_changed(state, library, NOW + 3_600_000, views=100)
    assert (decision.prompt, decision.reason, decision.state) == (None, "post_deleted", state)


def test_counts_of_an_unknown_post_decide_nothing(library: PromptLibrary) -> None:
    assert counts_changed(None, library, NOW, views=100) is None
    deleted_first = on_post_deleted(None, deleted(), library, NOW).state
    assert counts_changed(deleted_first, library, NOW, views=100) is None


def test_policy_thresholds_are_honoured(library: PromptLibrary) -> None:
    state = created_state(library)
    eager = ReembedPolicy(bucket_step=1, post_min_interval_ms=0)
    decision = on_counts_changed(state, {**PCTS, "views": 51}, library, eager, 1, NOW)
    assert decision.reason == "bucket_moved"


# --- engagement joins ------------------------------------------------------------------------


def test_enrich_engagement_with_known_post(library: PromptLibrary) -> None:
    state = on_post_created(None, post(text="A  post\nabout FAISS"), PCTS, library, NOW).state
    assert enrich_engagement(state, engagement(), library) == MemberEngagement(
        member_id="m1",
        post_id="p1",
        action="comment",
        ts_ms=1_700_000_100_000,
        dwell_ms=4_000,
        device="android",
        post_author_id="a1",
        post_summary="A post about FAISS",
    )


def test_enrich_engagement_summary_is_bounded(library: PromptLibrary) -> None:
    state = on_post_created(None, post(text="word " * 100_000), PCTS, library, NOW).state
    summary = enrich_engagement(state, engagement(), library).post_summary
    assert summary is not None
    assert len(summary) <= 160
    assert summary.endswith("…")


def test_enrich_engagement_with_unknown_post(library: PromptLibrary) -> None:
    joined = enrich_engagement(None, engagement(action="skip", dwell_ms=None, device=None), library)
    assert (joined.post_author_id, joined.post_summary) == (None, None)
    assert (joined.member_id, joined.post_id, joined.action) == ("m1", "p1", "skip")
    assert (joined.dwell_ms, joined.device) == (None, None)


def test_enrich_engagement_with_deleted_post_hides_its_content(library: PromptLibrary) -> None:
    state = on_post_deleted(created_state(library), deleted(), library, NOW).state
    assert state.post is not None  # the features are kept, but must not leak into histories
    joined = enrich_engagement(state, engagement(), library)
    assert (joined.post_author_id, joined.post_summary) == (None, None)


def test_post_attrs_with_missing_language() -> None:
    assert post_attrs(post(language=None, format="poll")) == {
        "author_id": "a1",
        "format": "poll",
        "language": None,
        "created_at_ms": 1_700_000_000_000,
    }


def test_state_survives_a_json_round_trip_like_a_faust_table(library: PromptLibrary) -> None:
    state = created_state(library)
    assert PostState.model_validate(state.model_dump(mode="json")) == state
