"""``schemas.events``: the producer wire contract, field by field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas import (
    Engagement,
    InvalidRecord,
    MemberProfile,
    PostCreated,
    PostDeleted,
    decode,
)


def post_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "post_id": "p1",
        "author_id": "a1",
        "created_at_ms": 1_700_000_000_000,
        "format": "article",
        "text": "hello",
    }
    return {**doc, **overrides}


def deleted_doc(**overrides: Any) -> dict[str, Any]:
    return {"schema_version": 1, "post_id": "p1", "deleted_at_ms": 1_700_000_000_001, **overrides}


def engagement_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "member_id": "m1",
        "post_id": "p1",
        "action": "like",
        "ts_ms": 1_700_000_000_002,
    }
    return {**doc, **overrides}


def profile_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema_version": 1, "member_id": "m1", "updated_at_ms": 5}
    return {**doc, **overrides}


def schema_error(model: type, doc: dict[str, Any]) -> str:
    with pytest.raises(InvalidRecord) as caught:
        decode(model, json.dumps(doc).encode())
    assert caught.value.reason == "schema_invalid"
    return str(caught.value)


# --- good examples ------------------------------------------------------------------------


def test_post_created_with_every_optional_field() -> None:
    doc = post_doc(
        author_headline="ML engineer",
        author_company="Nimbus",
        industry="software",
        language="en",
        author_followers=0,
        edited_at_ms=1_700_000_000_500,
    )
    post = decode(PostCreated, json.dumps(doc).encode())
    assert post.model_dump() == doc


def test_post_created_optional_fields_default_to_none() -> None:
    post = decode(PostCreated, json.dumps(post_doc()).encode())
    assert (post.author_headline, post.author_company, post.industry) == (None, None, None)
    assert (post.language, post.author_followers, post.edited_at_ms) == (None, None, None)


def test_an_edit_may_be_made_in_the_millisecond_of_its_creation() -> None:
    doc = post_doc(edited_at_ms=1_700_000_000_000)
    assert decode(PostCreated, json.dumps(doc).encode()).edited_at_ms == 1_700_000_000_000


def test_an_edit_before_its_creation_is_refused() -> None:
    message = schema_error(PostCreated, post_doc(edited_at_ms=1_699_999_999_999))
    assert message == (
        "PostCreated: edited_at_ms: Value error, must not be before created_at_ms "
        "1700000000000, got 1699999999999"
    )


def test_post_deleted_good_example() -> None:
    event = decode(PostDeleted, json.dumps(deleted_doc()).encode())
    assert (event.post_id, event.deleted_at_ms) == ("p1", 1_700_000_000_001)


@pytest.mark.parametrize(
    "action", ["impression", "click", "skip", "long_dwell", "like", "comment", "share"]
)
def test_engagement_accepts_every_action(action: str) -> None:
    event = decode(Engagement, json.dumps(engagement_doc(action=action)).encode())
    assert event.action == action
    assert (event.dwell_ms, event.device) == (None, None)


def test_engagement_with_dwell_and_device() -> None:
    event = decode(Engagement, json.dumps(engagement_doc(dwell_ms=0, device="ios")).encode())
    assert (event.dwell_ms, event.device) == (0, "ios")


def test_member_profile_with_lists() -> None:
    doc = profile_doc(
        headline="h",
        skills=["python", "kafka"],
        positions=[{"title": "Engineer", "company": "Acme", "start_ms": 1, "end_ms": None}],
        education=[{"school": "MIT", "degree": "BSc", "field": "CS"}],
    )
    profile = decode(MemberProfile, json.dumps(doc).encode())
    assert profile.skills == ["python", "kafka"]
    assert profile.positions[0].title == "Engineer"
    assert profile.positions[0].end_ms is None
    assert profile.education[0].field == "CS"


def test_member_profile_lists_default_empty() -> None:
    profile = decode(MemberProfile, json.dumps(profile_doc()).encode())
    assert (profile.skills, profile.positions, profile.education) == ([], [], [])


def test_events_are_immutable() -> None:
    post = PostCreated.model_validate(post_doc())
    with pytest.raises(ValueError, match="frozen"):
        post.text = "edited"  # type: ignore[misc]


# --- bad examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "doc", "field"),
    [
        (PostCreated, post_doc(format="hologram"), "format"),
        (PostCreated, post_doc(text=None), "text"),
        (PostCreated, post_doc(author_followers=-1), "author_followers"),
        (PostCreated, post_doc(created_at_ms=1.5), "created_at_ms"),
        (PostCreated, post_doc(edited_at_ms="now"), "edited_at_ms"),
        (PostCreated, post_doc(edited_at_ms=4_102_444_800_000), "edited_at_ms"),
        (PostDeleted, deleted_doc(deleted_at_ms=-1), "deleted_at_ms"),
        (Engagement, engagement_doc(action="love"), "action"),
        (Engagement, engagement_doc(dwell_ms=-3), "dwell_ms"),
        (Engagement, engagement_doc(ts_ms=4_102_444_800_000), "ts_ms"),
        (MemberProfile, profile_doc(skills="python"), "skills"),
        (MemberProfile, profile_doc(education=[{"degree": "BSc"}]), "education.0.school"),
    ],
)
def test_bad_field_is_named_in_the_message(model: type, doc: dict[str, Any], field: str) -> None:
    assert schema_error(model, doc).startswith(f"{model.__name__}: {field}: ")


@pytest.mark.parametrize(
    "bad_id",
    ["with space", "a/b", "", "x" * 129, "tab\there", "p1\n", "émoji", "q?x=1"],
)
@pytest.mark.parametrize(
    ("model", "factory", "field"),
    [
        (PostCreated, post_doc, "post_id"),
        (PostCreated, post_doc, "author_id"),
        (Engagement, engagement_doc, "member_id"),
        (MemberProfile, profile_doc, "member_id"),
    ],
)
def test_entity_ids_must_be_url_safe_and_bounded(
    model: type, factory: Any, field: str, bad_id: str
) -> None:
    assert schema_error(model, factory(**{field: bad_id})).startswith(
        f"{model.__name__}: {field}: "
    )


@pytest.mark.parametrize("good_id", ["x" * 128, "a", "urn:li:post:123", "a.b_c-d~e@f"])
def test_entity_ids_at_the_limits_are_accepted(good_id: str) -> None:
    assert decode(PostDeleted, json.dumps(deleted_doc(post_id=good_id)).encode()).post_id == (
        good_id
    )


def test_labels_are_limited_to_256_chars() -> None:
    assert decode(PostCreated, json.dumps(post_doc(industry="i" * 256)).encode()).industry
    message = schema_error(PostCreated, post_doc(industry="i" * 257))
    assert message == "PostCreated: industry: String should have at most 256 characters"


def test_profile_list_lengths_are_capped() -> None:
    assert decode(MemberProfile, json.dumps(profile_doc(skills=["s"] * 200)).encode())
    message = schema_error(MemberProfile, profile_doc(skills=["s"] * 201))
    assert message.startswith("MemberProfile: skills: List should have at most 200 items")
    positions = [{"title": "t"}] * 101
    assert schema_error(MemberProfile, profile_doc(positions=positions)).startswith(
        "MemberProfile: positions: "
    )


def test_epoch_ms_bounds() -> None:
    assert decode(PostDeleted, json.dumps(deleted_doc(deleted_at_ms=0)).encode())
    last = 4_102_444_800_000 - 1
    assert decode(PostDeleted, json.dumps(deleted_doc(deleted_at_ms=last)).encode())
