"""``streams.prompt_handlers.PromptHandlers`` driven with plain dicts as tables (no broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.post_state import PostState
from schemas import MemberEngagement, PromptRequest, decode
from streams.dlq import error_headers
from streams.metrics import PromptMetrics
from streams.prompt_handlers import PromptHandlers
from streams.records import Incoming, Outgoing
from streams.settings import KafkaSettings

NOW = 1_700_002_000_000
KAFKA = KafkaSettings(topic_prefix="t.")


class Harness:
    """Handlers plus their tables and metrics, with an offset counter per topic."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.handlers = PromptHandlers(KAFKA, PromptMetrics(self.registry), clock=lambda: NOW)
        self.posts: dict[str, Any] = {}
        self.members: dict[str, Any] = {}
        self.offset = 0

    def record(self, topic: str, key: str | bytes | None, value: Any) -> Incoming:
        self.offset += 1
        raw_key = key.encode() if isinstance(key, str) else key
        raw_value = (
            value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
        )
        return Incoming(f"t.{topic}", 0, self.offset, raw_key, raw_value, [])

    def post_side(self, topic: str, key: str | bytes | None, value: Any) -> list[Outgoing]:
        return self.handlers.on_post_side(self.record(topic, key, value), self.posts)

    def member_side(self, topic: str, key: str | bytes | None, value: Any) -> list[Outgoing]:
        return self.handlers.on_member_side(self.record(topic, key, value), self.members)

    def count(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def harness() -> Harness:
    return Harness()


def created(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "post_id": "p1",
        "author_id": "a1",
        "created_at_ms": 1_700_000_000_000,
        "format": "text",
        "text": "Kafka  tips",
    }
    return {**doc, **overrides}


def deleted(**overrides: Any) -> dict[str, Any]:
    return {"schema_version": 1, "post_id": "p1", "deleted_at_ms": 1_700_000_100_000, **overrides}


def engagement(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "member_id": "m1",
        "post_id": "p1",
        "action": "like",
        "ts_ms": 1_700_000_050_000,
    }
    return {**doc, **overrides}


def profile(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "member_id": "m1",
        "updated_at_ms": 1_700_000_000_000,
        "headline": "Engineer",
    }
    return {**doc, **overrides}


def only_prompt(out: list[Outgoing], topic: str, key: str) -> PromptRequest:
    assert len(out) == 1
    assert (out[0].topic, out[0].key, out[0].headers) == (topic, key.encode(), None)
    return decode(PromptRequest, out[0].value)


def assert_dead_letter(out: list[Outgoing], topic: str, reason: str, offset: int) -> dict[str, str]:
    assert len(out) == 1
    letter = out[0]
    assert letter.topic == f"t.{topic}.dlq"
    headers = error_headers(letter.headers or [])
    assert (headers["topic"], headers["reason"], headers["offset"]) == (
        f"t.{topic}",
        reason,
        str(offset),
    )
    return headers


# --- post side -----------------------------------------------------------------------------


def test_post_create_yields_one_post_prompt(harness: Harness) -> None:
    prompt = only_prompt(
        harness.post_side("posts.created", "p1", created()), "t.prompts.posts", "p1"
    )
    assert (prompt.entity, prompt.entity_id, prompt.op, prompt.version) == (
        "post",
        "p1",
        "upsert",
        1,
    )
    assert prompt.text == "post | format: text\ntext: Kafka tips"
    assert prompt.attrs["author_id"] == "a1"
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_700_000_000_000, NOW)
    stored = PostState.model_validate(harness.posts["p1"])
    assert (stored.version, stored.deleted) == (1, False)
    assert harness.count("feedline_events_total", topic="posts.created", outcome="processed") == 1
    assert harness.count("feedline_prompts_total", entity="post", op="upsert") == 1


def test_edit_then_delete_then_late_create(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created())
    edit = only_prompt(
        harness.post_side("posts.created", "p1", created(text="v2")), "t.prompts.posts", "p1"
    )
    assert edit.version == 2
    delete = only_prompt(
        harness.post_side("posts.deleted", "p1", deleted()), "t.prompts.posts", "p1"
    )
    assert (delete.op, delete.version) == ("delete", 3)
    assert harness.post_side("posts.created", "p1", created(text="back")) == []
    assert harness.post_side("posts.deleted", "p1", deleted()) == []
    assert harness.posts["p1"]["deleted"] is True
    assert harness.count("feedline_prompts_total", entity="post", op="delete") == 1
    assert harness.count("feedline_events_total", topic="posts.created", outcome="processed") == 3


@pytest.mark.parametrize(
    ("key", "value", "reason", "needle"),
    [
        ("p1", b'{"schema_version": 1, "post_id": ', "malformed_json", "not UTF-8 JSON"),
        ("p1", None, "malformed_json", "no value"),
        ("p1", b"[]", "not_an_object", "JSON list"),
        ("p1", created(format="gif"), "schema_invalid", "PostCreated: format:"),
        ("p1", created(schema_version=2), "unsupported_schema_version", "schema_version 2"),
        ("p2", created(), "key_mismatch", "must equal post_id 'p1'"),
    ],
)
def test_bad_post_records_become_one_dead_letter(
    harness: Harness, key: str, value: Any, reason: str, needle: str
) -> None:
    record = harness.record("posts.created", key, value)
    out = harness.handlers.on_post_side(record, harness.posts)
    headers = assert_dead_letter(out, "posts.created", reason, record.offset)
    assert needle in headers["message"]
    assert (out[0].key, out[0].value) == (record.key, record.value)
    assert harness.posts == {}
    assert harness.count("feedline_dlq_messages_total", topic="posts.created", reason=reason) == 1
    assert (
        harness.count("feedline_events_total", topic="posts.created", outcome="dead_lettered") == 1
    )
    assert harness.count("feedline_events_total", topic="posts.created", outcome="processed") == 0


def test_valid_record_after_a_bad_one_is_processed(harness: Harness) -> None:
    assert len(harness.post_side("posts.created", "p1", b"\xff\xfe")) == 1
    prompt = only_prompt(
        harness.post_side("posts.created", "p1", created()), "t.prompts.posts", "p1"
    )
    assert prompt.version == 1
    assert harness.count("feedline_events_total", topic="posts.created", outcome="processed") == 1
    assert (
        harness.count("feedline_dlq_messages_total", topic="posts.created", reason="malformed_json")
        == 1
    )


def test_bad_delete_and_engagement_are_dead_lettered_to_their_own_dlq(harness: Harness) -> None:
    out = harness.post_side("posts.deleted", "p1", deleted(deleted_at_ms="yesterday"))
    assert_dead_letter(out, "posts.deleted", "schema_invalid", harness.offset)
    out = harness.post_side("engagements", "m1", engagement())  # keyed by member: wrong
    assert_dead_letter(out, "engagements", "key_mismatch", harness.offset)
    assert (
        harness.count("feedline_dlq_messages_total", topic="engagements", reason="key_mismatch")
        == 1
    )


def test_engagement_is_forwarded_by_member_with_the_post_summary(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created(text="FAISS  deep dive"))
    out = harness.post_side("engagements", "p1", engagement(dwell_ms=900, device="web"))
    assert len(out) == 1
    assert (out[0].topic, out[0].key) == ("t.engagements.by-member", b"m1")
    assert decode(MemberEngagement, out[0].value, key=b"m1", key_field="member_id") == (
        MemberEngagement(
            member_id="m1",
            post_id="p1",
            action="like",
            ts_ms=1_700_000_050_000,
            dwell_ms=900,
            device="web",
            post_author_id="a1",
            post_summary="FAISS deep dive",
        )
    )
    assert harness.count("feedline_events_total", topic="engagements", outcome="processed") == 1


def test_every_engagement_is_forwarded_even_for_unknown_posts(harness: Harness) -> None:
    out = harness.post_side("engagements", "p9", engagement(post_id="p9", action="impression"))
    joined = decode(MemberEngagement, out[0].value)
    assert (joined.action, joined.post_summary, joined.post_author_id) == ("impression", None, None)
    assert harness.posts == {}


def test_unexpected_topic_is_a_bug_not_a_dead_letter(harness: Harness) -> None:
    with pytest.raises(ValueError, match=r"unexpected topic 't\.members\.profile'"):
        harness.post_side("members.profile", "m1", profile())
    with pytest.raises(ValueError, match=r"unexpected topic 't\.posts\.created'"):
        harness.member_side("posts.created", "p1", created())


# --- member side ---------------------------------------------------------------------------


def joined(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "member_id": "m1",
        "post_id": "p1",
        "action": "like",
        "ts_ms": 1_700_000_050_000,
        "post_summary": "Kafka tips",
    }
    return {**doc, **overrides}


def test_profile_yields_a_member_prompt(harness: Harness) -> None:
    prompt = only_prompt(
        harness.member_side("members.profile", "m1", profile()), "t.prompts.members", "m1"
    )
    assert (prompt.entity, prompt.entity_id, prompt.version) == ("member", "m1", 1)
    assert prompt.text == "member\nheadline: Engineer"
    assert harness.members["m1"]["version"] == 1
    assert harness.count("feedline_prompts_total", entity="member", op="upsert") == 1


def test_older_profile_yields_nothing_and_is_not_rewritten(harness: Harness) -> None:
    harness.member_side("members.profile", "m1", profile())
    before = dict(harness.members)
    assert harness.member_side("members.profile", "m1", profile(updated_at_ms=1)) == []
    assert harness.members == before
    assert harness.count("feedline_events_total", topic="members.profile", outcome="processed") == 2


def test_member_prompts_only_for_positive_actions(harness: Harness) -> None:
    for i, action in enumerate(["impression", "click", "skip"]):
        out = harness.member_side(
            "engagements.by-member", "m1", joined(post_id=f"n{i}", action=action)
        )
        assert out == []
    assert harness.members == {}
    texts = []
    for i, action in enumerate(["like", "comment", "share", "long_dwell"]):
        out = harness.member_side(
            "engagements.by-member",
            "m1",
            joined(post_id=f"y{i}", action=action, post_summary=f"s{i}"),
        )
        prompt = only_prompt(out, "t.prompts.members", "m1")
        assert prompt.version == i + 1
        texts.append(prompt.text)
    assert texts[-1] == "member\nengaged with: s0 || s1 || s2 || s3"
    assert (
        harness.count("feedline_events_total", topic="engagements.by-member", outcome="processed")
        == 7
    )


def test_post_side_output_feeds_the_member_side(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created())
    [forwarded] = harness.post_side("engagements", "p1", engagement(action="share"))
    record = Incoming(forwarded.topic, 0, 1, forwarded.key, forwarded.value, [])
    out = harness.handlers.on_member_side(record, harness.members)
    assert only_prompt(out, "t.prompts.members", "m1").text == "member\nengaged with: Kafka tips"


def test_bad_member_records_become_dead_letters(harness: Harness) -> None:
    out = harness.member_side("members.profile", "m2", profile())
    assert_dead_letter(out, "members.profile", "key_mismatch", harness.offset)
    out = harness.member_side("engagements.by-member", "m1", joined(action="poke"))
    assert_dead_letter(out, "engagements.by-member", "schema_invalid", harness.offset)
    assert harness.members == {}
    assert (
        harness.count("feedline_dlq_messages_total", topic="members.profile", reason="key_mismatch")
        == 1
    )
    good = harness.member_side("members.profile", "m1", profile())
    assert only_prompt(good, "t.prompts.members", "m1").version == 1


# --- hostile input must never stop the pipeline -------------------------------------------


def test_huge_text_is_truncated_not_rejected(harness: Harness) -> None:
    out = harness.post_side("posts.created", "p1", created(text="x" * 1_000_000))
    prompt = only_prompt(out, "t.prompts.posts", "p1")
    assert prompt.text == "post | format: text\ntext: " + "x" * 1_999 + "…"


def test_deeply_nested_json_is_dead_lettered(harness: Harness) -> None:
    value = (
        json.dumps(created()).encode()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    )
    out = harness.post_side("posts.created", "p1", value)
    assert_dead_letter(out, "posts.created", "malformed_json", harness.offset)


def test_lone_surrogate_text_does_not_stop_the_pipeline(harness: Harness) -> None:
    value = json.dumps(created())[:-1].encode() + b', "text": "bad \\ud800 text"}'
    out = harness.post_side("posts.created", "p1", value)
    assert len(out) == 1
    assert out[0].topic in ("t.posts.created.dlq", "t.prompts.posts")
