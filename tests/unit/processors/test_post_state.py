"""``processors.post_state``: post lifecycle (create, edit, delete) and engagement joins."""

from __future__ import annotations

from typing import Any

from processors.post_state import (
    PostState,
    enrich_engagement,
    on_post_created,
    on_post_deleted,
    post_attrs,
)
from processors.prompts import POST_PROMPT_VERSION, render_post_prompt
from schemas import Engagement, MemberEngagement, PostCreated, PostDeleted

NOW = 1_700_000_999_000


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


def test_create_publishes_version_one_with_attrs() -> None:
    event = post()
    decision = on_post_created(None, event, NOW)
    assert decision.state == PostState(post_id="p1", version=1, deleted=False, post=event)
    prompt = decision.prompt
    assert prompt is not None
    assert (prompt.entity, prompt.entity_id, prompt.op, prompt.version) == (
        "post",
        "p1",
        "upsert",
        1,
    )
    assert prompt.text == render_post_prompt(event) == "post | format: video\ntext: first draft"
    assert prompt.prompt_version == POST_PROMPT_VERSION
    assert prompt.attrs == {
        "author_id": "a1",
        "format": "video",
        "language": "en",
        "created_at_ms": 1_700_000_000_000,
    }
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_700_000_000_000, NOW)


def test_edit_publishes_version_two_with_the_new_text() -> None:
    first = on_post_created(None, post(), NOW)
    edited = post(text="second draft", created_at_ms=1_700_000_200_000)
    decision = on_post_created(first.state, edited, NOW + 1)
    assert decision.state.version == 2
    assert decision.state.post == edited
    assert decision.prompt is not None
    assert decision.prompt.version == 2
    assert decision.prompt.text.endswith("text: second draft")
    assert decision.prompt.event_time_ms == 1_700_000_200_000


def test_delete_after_edit_publishes_delete_with_version_three() -> None:
    state = on_post_created(None, post(), NOW).state
    state = on_post_created(state, post(text="v2"), NOW).state
    decision = on_post_deleted(state, deleted(), NOW + 5)
    assert decision.state.deleted is True
    assert decision.state.version == 3
    prompt = decision.prompt
    assert prompt is not None
    assert (prompt.op, prompt.version, prompt.entity_id, prompt.text) == ("delete", 3, "p1", "")
    assert prompt.attrs == {}
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_700_000_500_000, NOW + 5)


def test_create_after_delete_is_dropped_and_post_stays_deleted() -> None:
    state = on_post_deleted(on_post_created(None, post(), NOW).state, deleted(), NOW).state
    decision = on_post_created(state, post(text="resurrected"), NOW)
    assert decision.prompt is None
    assert decision.state == state
    assert decision.state.deleted is True


def test_delete_before_create_drops_the_later_create() -> None:
    first = on_post_deleted(None, deleted(), NOW)
    assert first.state == PostState(post_id="p1", version=1, deleted=True, post=None)
    assert first.prompt is not None
    assert (first.prompt.op, first.prompt.version) == ("delete", 1)
    late = on_post_created(first.state, post(), NOW)
    assert late.prompt is None
    assert late.state == first.state


def test_repeated_delete_publishes_nothing() -> None:
    state = on_post_deleted(on_post_created(None, post(), NOW).state, deleted(), NOW).state
    again = on_post_deleted(state, deleted(deleted_at_ms=1_700_000_600_000), NOW)
    assert again.prompt is None
    assert again.state == state
    assert again.state.version == 2


def test_enrich_engagement_with_known_post() -> None:
    state = on_post_created(None, post(text="A  post\nabout FAISS"), NOW).state
    joined = enrich_engagement(state, engagement())
    assert joined == MemberEngagement(
        member_id="m1",
        post_id="p1",
        action="comment",
        ts_ms=1_700_000_100_000,
        dwell_ms=4_000,
        device="android",
        post_author_id="a1",
        post_summary="A post about FAISS",
    )


def test_enrich_engagement_with_unknown_post() -> None:
    joined = enrich_engagement(None, engagement(action="skip", dwell_ms=None, device=None))
    assert (joined.post_author_id, joined.post_summary) == (None, None)
    assert (joined.member_id, joined.post_id, joined.action) == ("m1", "p1", "skip")
    assert (joined.dwell_ms, joined.device) == (None, None)


def test_enrich_engagement_with_deleted_post_hides_its_content() -> None:
    state = on_post_deleted(on_post_created(None, post(), NOW).state, deleted(), NOW).state
    assert state.post is not None  # the features are kept, but must not leak into histories
    joined = enrich_engagement(state, engagement())
    assert (joined.post_author_id, joined.post_summary) == (None, None)


def test_post_attrs_with_missing_language() -> None:
    assert post_attrs(post(language=None, format="poll")) == {
        "author_id": "a1",
        "format": "poll",
        "language": None,
        "created_at_ms": 1_700_000_000_000,
    }


def test_state_survives_a_json_round_trip_like_a_faust_table() -> None:
    state = on_post_created(None, post(), NOW).state
    assert PostState.model_validate(state.model_dump(mode="json")) == state
