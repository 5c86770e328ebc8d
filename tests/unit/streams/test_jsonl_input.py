"""``streams.jsonl_input``: validating producer events from JSON Lines files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas import Engagement, MemberProfile, PostCreated, PostDeleted
from streams.errors import InvalidProduceInput
from streams.jsonl_input import MODELS_BY_TOPIC, parse_line, read_events


def created(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "post_id": "p1",
        "author_id": "a1",
        "created_at_ms": 1,
        "format": "text",
        "text": "hi",
    }
    return {**doc, **overrides}


def envelope(topic: str, value: Any) -> str:
    return json.dumps({"topic": topic, "value": value})


def parse_error(line: str, default_topic: str | None = None) -> str:
    with pytest.raises(InvalidProduceInput) as caught:
        parse_line(line, default_topic)
    return str(caught.value)


def test_models_by_topic() -> None:
    assert {
        "posts.created": PostCreated,
        "posts.deleted": PostDeleted,
        "engagements": Engagement,
        "members.profile": MemberProfile,
    } == MODELS_BY_TOPIC


def test_envelope_line() -> None:
    event = parse_line(envelope("posts.created", created()))
    assert event == PostCreated.model_validate(created())


def test_envelope_wins_over_the_default_topic() -> None:
    line = envelope("posts.deleted", {"schema_version": 1, "post_id": "p1", "deleted_at_ms": 2})
    assert isinstance(parse_line(line, default_topic="posts.created"), PostDeleted)


def test_bare_line_with_default_topic() -> None:
    line = json.dumps({"schema_version": 1, "member_id": "m1", "updated_at_ms": 3})
    event = parse_line(line, default_topic="members.profile")
    assert event == MemberProfile(schema_version=1, member_id="m1", updated_at_ms=3)


def test_bare_line_without_default_topic_is_refused() -> None:
    assert parse_error(json.dumps(created())) == (
        "unknown or missing topic None; expected one of "
        "posts.created, posts.deleted, engagements, members.profile"
    )


def test_unknown_topic() -> None:
    assert parse_error(envelope("prompts.posts", created())).startswith(
        "unknown or missing topic 'prompts.posts'; expected one of posts.created"
    )


def test_invalid_event_says_what_is_wrong() -> None:
    assert parse_error(envelope("posts.created", created(format="gif"))).startswith(
        "PostCreated: format: Input should be"
    )
    assert parse_error(envelope("posts.created", [1])) == "value is JSON list, expected an object"


def test_line_that_is_not_json_or_not_an_object() -> None:
    assert parse_error("{oops").startswith("not JSON: ")
    assert parse_error("[1, 2]") == "expected a JSON object"


def test_deeply_nested_line_is_refused() -> None:
    assert parse_error("[" * 100_000 + "]" * 100_000) == "JSON nested too deeply"
    nested = '{"topic": "posts.created", "value": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert parse_error(nested) == "JSON nested too deeply"


def test_read_events_returns_all_events_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                envelope("posts.created", created()),
                "",
                "   ",
                json.dumps(created(post_id="p2")),
                envelope(
                    "engagements",
                    {
                        "schema_version": 1,
                        "member_id": "m1",
                        "post_id": "p1",
                        "action": "click",
                        "ts_ms": 5,
                    },
                ),
            ]
        )
        + "\n"
    )
    events = list(read_events(path, default_topic="posts.created"))
    assert [type(e).__name__ for e in events] == ["PostCreated", "PostCreated", "Engagement"]
    assert [e.post_id for e in events] == ["p1", "p2", "p1"]


def test_read_events_reports_every_bad_line_and_returns_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(
            [
                envelope("posts.created", created()),
                "{not json",
                envelope("nope", created()),
                "",
                envelope("posts.created", created(post_id="has space")),
            ]
        )
    )
    with pytest.raises(InvalidProduceInput) as caught:
        read_events(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == "3 invalid lines; nothing was produced:"
    assert lines[1].startswith(f"{path}:2: not JSON: ")
    assert lines[2].startswith(f"{path}:3: unknown or missing topic 'nope'")
    assert lines[3].startswith(f"{path}:5: PostCreated: post_id: String should match pattern")
    assert len(lines) == 4


def test_read_events_caps_the_listing_at_ten(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(["{bad"] * 12 + [envelope("posts.created", created())]))
    with pytest.raises(InvalidProduceInput) as caught:
        read_events(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == "12 invalid lines; nothing was produced:"
    assert [line.split(": ")[0] for line in lines[1:11]] == [f"{path}:{n}" for n in range(1, 11)]
    assert lines[11] == "... and 2 more"
    assert len(lines) == 12
