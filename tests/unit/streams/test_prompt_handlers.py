"""``streams.prompt_handlers.PromptHandlers`` driven with plain dicts as tables (no broker)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.feature_sketches import PartitionSketches, PostCounts
from processors.member_state import MemberHistory, MemberNegatives, MemberState
from processors.post_state import PostState
from processors.prompts import PromptConfig, PromptLibrary
from processors.reembed import ReembedPolicy
from processors.token_budget import TokenMeter
from schemas import MemberEngagement, PromptRequest, decode
from streams.dlq import error_headers
from streams.member_bundles import bundle_by_partition
from streams.metrics import PromptMetrics
from streams.prompt_handlers import TICK_HEADER, PromptHandlers, PromptTables
from streams.records import Incoming, Outgoing
from streams.settings import KafkaSettings

T0 = 1_700_002_000_000
KAFKA = KafkaSettings(topic_prefix="t.")
POST_SIDE = ("posts.created", "posts.deleted", "engagements")
MEMBER_SIDE = ("members.profile", "engagements.by-member")


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class Harness:
    """Handlers plus their tables, metrics and clock, with an offset counter."""

    def __init__(self, meter: TokenMeter, refresh_every: int = 1) -> None:
        self.meter = meter
        self.clock = Clock(T0)
        self.registry = CollectorRegistry()
        self.library = PromptLibrary(PromptConfig(), meter)
        self.handlers = PromptHandlers(
            KAFKA,
            PromptMetrics(self.registry),
            self.library,
            ReembedPolicy(),
            PartitionSketches(k=200, refresh_every=refresh_every),
            clock=self.clock,
        )
        self.tables = PromptTables()
        self.offset = 0

    def record(
        self, topic: str, key: str | bytes | None, value: Any, partition: int = 0
    ) -> Incoming:
        self.offset += 1
        raw_key = key.encode() if isinstance(key, str) else key
        raw_value = (
            value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
        )
        return Incoming(f"t.{topic}", partition, self.offset, raw_key, raw_value, [])

    def feed(self, record: Incoming) -> list[Outgoing]:
        topic = record.topic.removeprefix("t.")
        if topic in MEMBER_SIDE:
            return self.handlers.on_member_side(record, self.tables)
        return self.handlers.on_post_side(record, self.tables)

    def post_side(
        self, topic: str, key: str | bytes | None, value: Any, partition: int = 0
    ) -> list[Outgoing]:
        return self.handlers.on_post_side(self.record(topic, key, value, partition), self.tables)

    def member_side(
        self, topic: str, key: str | bytes | None, value: Any, partition: int = 0
    ) -> list[Outgoing]:
        return self.handlers.on_member_side(self.record(topic, key, value, partition), self.tables)

    def tick(self, partition: int) -> list[Outgoing]:
        tick = self.handlers.tick(partition)
        self.offset += 1
        assert tick.partition is not None and tick.headers is not None
        record = Incoming(
            tick.topic, tick.partition, self.offset, tick.key, tick.value, tick.headers
        )
        return self.handlers.on_member_side(record, self.tables)

    def count(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def decisions(self, entity: str, decision: str, reason: str) -> float:
        return self.count(
            "feedline_reembed_decisions_total", entity=entity, decision=decision, reason=reason
        )

    def all_tables_empty(self) -> bool:
        return all(not getattr(self.tables, name) for name in vars(self.tables))


@pytest.fixture
def harness(meter: TokenMeter) -> Harness:
    return Harness(meter)


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


def joined(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "member_id": "m1",
        "post_id": "p1",
        "action": "like",
        "ts_ms": 1_700_000_050_000,
        "post_summary": "Kafka tips",
    }
    return {**doc, **overrides}


def prompts_in(out: list[Outgoing], topic: str) -> list[PromptRequest]:
    return [decode(PromptRequest, o.value) for o in out if o.topic == topic]


def only_prompt(out: list[Outgoing], topic: str, key: str) -> PromptRequest:
    assert len(out) == 1
    assert (out[0].topic, out[0].key, out[0].headers) == (topic, key.encode(), None)
    return decode(PromptRequest, out[0].value)


def forwarded(out: list[Outgoing]) -> MemberEngagement:
    """The one record on ``engagements.by-member``, checked to be keyed by its member."""
    [record] = [o for o in out if o.topic == "t.engagements.by-member"]
    assert record.key is not None
    return decode(MemberEngagement, record.value, key=record.key, key_field="member_id")


ALL_VIEWS_100 = (
    "engagement: views <view_pct>100</view_pct> | likes <like_pct>100</like_pct>"
    " | comments <comment_pct>100</comment_pct> | shares <share_pct>100</share_pct>"
)


# --- post side -------------------------------------------------------------------------------


def test_post_create_yields_one_post_prompt(harness: Harness) -> None:
    out = harness.post_side("posts.created", "p1", created(), partition=2)
    prompt = only_prompt(out, "t.prompts.posts", "p1")
    assert (prompt.entity, prompt.entity_id, prompt.op, prompt.version) == (
        "post",
        "p1",
        "upsert",
        1,
    )
    assert prompt.text == f"post | format: text\n{ALL_VIEWS_100}\ntext: Kafka tips"
    assert prompt.prompt_version == harness.library.post_version
    assert prompt.attrs["author_id"] == "a1"
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_700_000_000_000, T0)
    stored = PostState.model_validate(harness.tables.posts["p1"])
    assert (stored.version, stored.deleted, stored.last_prompt_ms) == (1, False, T0)
    assert PostCounts.model_validate(harness.tables.post_counts["p1"]) == PostCounts(partition=2)
    assert "views@2" in harness.tables.sketches
    assert harness.count("feedline_events_total", topic="posts.created", outcome="processed") == 1
    assert harness.count("feedline_prompts_total", entity="post", op="upsert") == 1
    assert harness.decisions("post", "triggered", "created") == 1


def test_author_followers_are_rendered_as_a_percentile(harness: Harness) -> None:
    harness.post_side("posts.created", "p0", created(post_id="p0", author_followers=10))
    out = harness.post_side("posts.created", "p1", created(author_followers=5_000))
    prompt = only_prompt(out, "t.prompts.posts", "p1")
    assert prompt.text.split("\n")[1].endswith(
        " | author followers <follower_pct>100</follower_pct>"
    )
    assert harness.tables.post_counts["p1"]["followers"] == 5_000


def test_post_re_embedding_follows_the_policy(harness: Harness) -> None:
    clock = harness.clock
    harness.post_side("posts.created", "p1", created())
    clock.now_ms = T0 + 1_000
    out = harness.post_side("engagements", "p1", engagement(action="impression", ts_ms=T0 + 1_000))
    assert prompts_in(out, "t.prompts.posts") == []  # the only post: still the top percentile
    assert forwarded(out).post_id == "p1"
    assert harness.decisions("post", "suppressed", "below_step") == 1
    for i in range(1, 10):  # nine other posts of partition 0, three views each
        for _ in range(3):
            harness.post_side(
                "engagements", f"q{i}", engagement(post_id=f"q{i}", action="impression")
            )
    clock.now_ms = T0 + 2_000  # p1's views drop to the 10th percentile, but too soon
    out = harness.post_side("engagements", "p1", engagement(action="impression", ts_ms=T0 + 2_000))
    assert prompts_in(out, "t.prompts.posts") == []
    assert harness.decisions("post", "suppressed", "min_interval") == 1
    clock.now_ms = T0 + 62_000  # a like after the interval: the suppressed move is published
    out = harness.post_side("engagements", "p1", engagement(action="like", ts_ms=T0 + 61_500))
    [prompt] = prompts_in(out, "t.prompts.posts")
    assert len(out) == 2
    assert forwarded(out).action == "like"  # forwarded as well as re-embedded
    assert prompt.version == 2
    assert prompt.text.split("\n")[1] == (
        "engagement: views <view_pct>10</view_pct> | likes <like_pct>100</like_pct>"
        " | comments <comment_pct>100</comment_pct> | shares <share_pct>100</share_pct>"
    )
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (T0 + 61_500, T0 + 62_000)
    assert harness.decisions("post", "triggered", "bucket_moved") == 1
    assert harness.tables.posts["p1"]["prompted_percentiles"]["views"] == 10
    assert harness.tables.post_counts["p1"]["views"] == 2
    assert harness.count("feedline_prompts_total", entity="post", op="upsert") == 2


def test_edit_then_delete_then_late_create(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created())
    edit = only_prompt(
        harness.post_side("posts.created", "p1", created(text="v2")), "t.prompts.posts", "p1"
    )
    assert (edit.version, edit.text.split("\n")[-1]) == (2, "text: v2")
    delete = only_prompt(
        harness.post_side("posts.deleted", "p1", deleted()), "t.prompts.posts", "p1"
    )
    assert (delete.op, delete.version, delete.text) == ("delete", 3, "")
    harness.clock.now_ms = T0 + 3_600_000
    out = harness.post_side("engagements", "p1", engagement(action="share"))
    assert prompts_in(out, "t.prompts.posts") == []  # never re-embedded
    assert forwarded(out).post_summary is None  # and its text does not leak into histories
    assert harness.post_side("posts.created", "p1", created(text="back")) == []
    assert harness.post_side("posts.deleted", "p1", deleted()) == []
    assert harness.tables.posts["p1"]["deleted"] is True
    assert harness.tables.posts["p1"]["version"] == 3
    assert harness.decisions("post", "triggered", "created") == 1
    assert harness.decisions("post", "triggered", "edited") == 1
    assert harness.decisions("post", "triggered", "deleted") == 1
    assert harness.decisions("post", "suppressed", "post_deleted") == 3
    assert harness.count("feedline_prompts_total", entity="post", op="delete") == 1
    assert harness.count("feedline_events_total", topic="posts.created", outcome="processed") == 3


def test_engagement_is_forwarded_by_member_with_the_post_summary(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created(text="FAISS  deep dive"))
    out = harness.post_side(
        "engagements", "p1", engagement(dwell_ms=900, device="web", action="click")
    )
    assert len(out) == 1
    assert (out[0].topic, out[0].key) == ("t.engagements.by-member", b"m1")
    assert forwarded(out) == MemberEngagement(
        member_id="m1",
        post_id="p1",
        action="click",
        ts_ms=1_700_000_050_000,
        dwell_ms=900,
        device="web",
        post_author_id="a1",
        post_summary="FAISS deep dive",
    )
    assert harness.count("feedline_events_total", topic="engagements", outcome="processed") == 1


@pytest.mark.parametrize(
    "action", ["impression", "click", "skip", "long_dwell", "like", "comment", "share"]
)
def test_every_engagement_is_forwarded_even_for_unknown_posts(
    harness: Harness, action: str
) -> None:
    out = harness.post_side(
        "engagements", "p9", engagement(post_id="p9", member_id="m7", action=action)
    )
    assert len(out) == 1
    assert out[0].key == b"m7"
    joined_event = forwarded(out)
    assert (joined_event.action, joined_event.post_summary, joined_event.post_author_id) == (
        action,
        None,
        None,
    )
    assert harness.tables.posts == {}


def test_engagements_count_into_their_feature(harness: Harness) -> None:
    for action in [
        "impression",
        "impression",
        "like",
        "comment",
        "share",
        "click",
        "skip",
        "long_dwell",
    ]:
        harness.post_side("engagements", "p1", engagement(action=action))
    assert PostCounts.model_validate(harness.tables.post_counts["p1"]) == PostCounts(
        partition=0, views=2, likes=1, comments=1, shares=1
    )


def test_unexpected_topic_is_a_bug_not_a_dead_letter(harness: Harness) -> None:
    with pytest.raises(ValueError, match=r"unexpected topic 't\.members\.profile'"):
        harness.post_side("members.profile", "m1", profile())
    with pytest.raises(ValueError, match=r"unexpected topic 't\.posts\.created'"):
        harness.member_side("posts.created", "p1", created())


# --- dead letters ----------------------------------------------------------------------------


GOOD: dict[str, tuple[str, dict[str, Any]]] = {
    "posts.created": ("p1", created()),
    "posts.deleted": ("p1", deleted()),
    "engagements": ("p1", engagement()),
    "members.profile": ("m1", profile()),
    "engagements.by-member": ("m1", joined()),
}
SCHEMA_INVALID: dict[str, dict[str, Any]] = {
    "posts.created": created(format="gif"),
    "posts.deleted": deleted(deleted_at_ms="yesterday"),
    "engagements": engagement(action="poke"),
    "members.profile": profile(skills="python"),
    "engagements.by-member": joined(ts_ms=-1),
}


def bad_record(topic: str, kind: str) -> tuple[str, Any]:
    key, good = GOOD[topic]
    if kind == "malformed_json":
        return key, json.dumps(good).encode()[:-3]
    if kind == "schema_invalid":
        return key, SCHEMA_INVALID[topic]
    return key + "x", good  # key_mismatch


@pytest.mark.parametrize("kind", ["malformed_json", "schema_invalid", "key_mismatch"])
@pytest.mark.parametrize("topic", [*POST_SIDE, *MEMBER_SIDE])
def test_bad_records_become_one_dead_letter_and_the_next_is_processed(
    harness: Harness, topic: str, kind: str
) -> None:
    key, value = bad_record(topic, kind)
    record = harness.record(topic, key, value, partition=3)
    out = harness.feed(record)
    assert len(out) == 1
    letter = out[0]
    assert letter.topic == f"t.{topic}.dlq"
    assert (letter.key, letter.value) == (record.key, record.value)
    headers = error_headers(letter.headers or [])
    assert {k: headers[k] for k in ("topic", "partition", "offset", "class", "reason")} == {
        "topic": f"t.{topic}",
        "partition": "3",
        "offset": str(record.offset),
        "class": "InvalidRecord",
        "reason": kind,
    }
    assert headers["message"]
    assert harness.all_tables_empty()
    assert harness.count("feedline_dlq_messages_total", topic=topic, reason=kind) == 1
    assert harness.count("feedline_events_total", topic=topic, outcome="dead_lettered") == 1
    assert harness.count("feedline_events_total", topic=topic, outcome="processed") == 0
    good_key, good = GOOD[topic]
    out = harness.feed(harness.record(topic, good_key, good, partition=3))
    assert out and not any(o.topic.endswith(".dlq") for o in out)
    assert harness.count("feedline_events_total", topic=topic, outcome="processed") == 1


@pytest.mark.parametrize(
    ("value", "reason", "needle"),
    [
        (None, "malformed_json", "no value"),
        (b"\xff\xfe", "malformed_json", "not UTF-8 JSON"),
        (b"[]", "not_an_object", "JSON list"),
        (created(schema_version=2), "unsupported_schema_version", "schema_version 2"),
        (created(text="bad \ud800 text"), "schema_invalid", "surrogate"),
    ],
)
def test_more_bad_post_records(harness: Harness, value: Any, reason: str, needle: str) -> None:
    out = harness.post_side("posts.created", "p1", value)
    assert len(out) == 1
    assert out[0].topic == "t.posts.created.dlq"
    headers = error_headers(out[0].headers or [])
    assert headers["reason"] == reason
    assert needle in headers["message"]


def test_deeply_nested_json_is_dead_lettered(harness: Harness) -> None:
    value = (
        json.dumps(created()).encode()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    )
    out = harness.post_side("posts.created", "p1", value)
    assert [o.topic for o in out] == ["t.posts.created.dlq"]
    assert error_headers(out[0].headers or [])["reason"] == "malformed_json"


# --- member side -----------------------------------------------------------------------------


def test_profile_yields_a_member_prompt(harness: Harness) -> None:
    out = harness.member_side("members.profile", "m1", profile())
    prompt = only_prompt(out, "t.prompts.members", "m1")
    assert (prompt.entity, prompt.entity_id, prompt.version) == ("member", "m1", 1)
    assert prompt.text == "member | headline: Engineer"
    assert prompt.prompt_version == harness.library.member_version
    assert (prompt.event_time_ms, prompt.prompted_at_ms) == (1_700_000_000_000, T0)
    assert harness.tables.members["m1"]["version"] == 1
    assert harness.count("feedline_prompts_total", entity="member", op="upsert") == 1
    assert harness.decisions("member", "triggered", "profile") == 1


def test_older_profile_yields_nothing_and_is_not_rewritten(harness: Harness) -> None:
    harness.member_side("members.profile", "m1", profile())
    before = dict(harness.tables.members)
    harness.clock.now_ms = T0 + 60_000
    assert harness.member_side("members.profile", "m1", profile(updated_at_ms=1)) == []
    assert harness.tables.members == before
    assert harness.decisions("member", "suppressed", "stale_profile") == 1
    assert harness.count("feedline_events_total", topic="members.profile", outcome="processed") == 2


def test_only_positive_engagements_enter_the_history(harness: Harness) -> None:
    for i, action in enumerate(["impression", "click", "skip"]):
        out = harness.member_side(
            "engagements.by-member", "m1", joined(post_id=f"n{i}", action=action)
        )
        assert out == []
    assert harness.tables.members == harness.tables.member_history == {}
    negatives = MemberNegatives.model_validate(harness.tables.member_negatives["m1"])
    assert [n.post_id for n in negatives.items] == ["n0"]  # impressions only
    for i, action in enumerate(["like", "comment", "share", "long_dwell"]):
        harness.clock.now_ms = T0 + 10_000 * i  # past the debounce each time
        out = harness.member_side(
            "engagements.by-member",
            "m1",
            joined(post_id=f"y{i}", action=action, post_summary=f"s{i}", ts_ms=4_000 - i),
        )
        assert only_prompt(out, "t.prompts.members", "m1").version == i + 1
    assert only_prompt(out, "t.prompts.members", "m1").text == (
        "member\nengaged with: s3 || s2 || s1 || s0"  # by engagement time, not arrival
    )
    assert harness.decisions("member", "triggered", "engagement") == 4
    assert (
        harness.count("feedline_events_total", topic="engagements.by-member", outcome="processed")
        == 7
    )


def bundled(harness: Harness, records: list[tuple[str, Any]], partition: int = 3) -> Incoming:
    """``records`` (member_id, joined value) as the worker bundles them for ``partition``."""
    topic = "t.engagements.by-member"
    sent = [Outgoing(topic, key.encode(), json.dumps(value).encode()) for key, value in records]
    [bundle] = bundle_by_partition(sent, topic, lambda key: partition)
    assert bundle.headers is not None
    harness.offset += 1
    return Incoming(topic, partition, harness.offset, bundle.key, bundle.value, bundle.headers)


def test_a_bundle_is_handled_as_its_records_one_by_one(meter: TokenMeter) -> None:
    records = [
        ("m1", joined(post_id="a", action="impression")),
        ("m2", joined(member_id="m2", post_id="b", action="like")),
        ("m1", joined(post_id="c", action="comment", ts_ms=1_700_000_060_000)),
        ("m1", joined(post_id="a", action="share", ts_ms=1_700_000_070_000)),
    ]
    one_by_one, in_bundle = Harness(meter), Harness(meter)
    out = [
        o
        for key, value in records
        for o in one_by_one.member_side("engagements.by-member", key, value, partition=3)
    ]
    assert in_bundle.handlers.on_member_side(bundled(in_bundle, records), in_bundle.tables) == out
    assert len(prompts_in(out, "t.prompts.members")) == 2  # m2, then m1 (debounce holds the rest)
    assert in_bundle.tables == one_by_one.tables
    assert in_bundle.tables.member_pending == {"m1": 3}
    for harness in (one_by_one, in_bundle):
        events = ("feedline_events_total", {"topic": "engagements.by-member"})
        assert harness.count(events[0], **events[1], outcome="processed") == 4


def test_a_bad_record_in_a_bundle_is_one_dead_letter(harness: Harness) -> None:
    records = [
        ("m1", joined()),
        ("m2", joined(member_id="m2", ts_ms=-1)),
        ("m2", joined(member_id="m2")),
    ]
    bundle = bundled(harness, records)
    out = harness.handlers.on_member_side(bundle, harness.tables)
    [letter] = [o for o in out if o.topic.endswith(".dlq")]
    assert (letter.key, letter.value) == (b"m2", json.dumps(records[1][1]).encode())
    headers = error_headers(letter.headers or [])
    assert (headers["offset"], headers["partition"], headers["reason"]) == (
        str(bundle.offset),
        "3",
        "schema_invalid",
    )
    assert [p.entity_id for p in prompts_in(out, "t.prompts.members")] == ["m1", "m2"]
    assert (
        harness.count("feedline_events_total", topic="engagements.by-member", outcome="processed")
        == 2
    )


def test_a_bundle_that_cannot_be_split_is_dead_lettered_whole(harness: Harness) -> None:
    bundle = bundled(harness, [("m1", joined()), ("m1", joined(post_id="b"))])
    broken = bundle._replace(value=(bundle.value or b"")[:-5])
    [letter] = harness.handlers.on_member_side(broken, harness.tables)
    assert (letter.topic, letter.key, letter.value) == (
        "t.engagements.by-member.dlq",
        broken.key,
        broken.value,
    )
    assert error_headers(letter.headers or [])["reason"] == "malformed_bundle"
    assert harness.all_tables_empty()
    assert (
        harness.count(
            "feedline_dlq_messages_total", topic="engagements.by-member", reason="malformed_bundle"
        )
        == 1
    )


def test_impressions_become_hard_negatives_until_engaged(harness: Harness) -> None:
    harness.member_side("engagements.by-member", "m1", joined(post_id="a", action="impression"))
    harness.member_side("engagements.by-member", "m1", joined(post_id="b", action="impression"))
    harness.member_side("engagements.by-member", "m1", joined(post_id="a", action="impression"))
    negatives = MemberNegatives.model_validate(harness.tables.member_negatives["m1"])
    assert [n.post_id for n in negatives.items] == ["a", "b"]
    harness.member_side("engagements.by-member", "m1", joined(post_id="a", action="comment"))
    negatives = MemberNegatives.model_validate(harness.tables.member_negatives["m1"])
    assert [n.post_id for n in negatives.items] == ["b"]
    history = MemberHistory.model_validate(harness.tables.member_history["m1"])
    assert [h.post_id for h in history.items] == ["a"]
    harness.member_side("engagements.by-member", "m1", joined(post_id="a", action="impression"))
    assert MemberNegatives.model_validate(harness.tables.member_negatives["m1"]) == negatives


def test_repeat_positive_engagement_publishes_nothing(harness: Harness) -> None:
    harness.member_side("engagements.by-member", "m1", joined())
    harness.clock.now_ms = T0 + 60_000
    assert harness.member_side("engagements.by-member", "m1", joined(action="share")) == []
    assert harness.tables.member_pending == {}
    assert harness.count("feedline_prompts_total", entity="member", op="upsert") == 1


def test_member_changes_are_debounced_and_flushed_by_ticks(harness: Harness) -> None:
    clock = harness.clock
    first = harness.member_side("members.profile", "m1", profile(), partition=1)
    assert only_prompt(first, "t.prompts.members", "m1").version == 1  # leading edge
    clock.now_ms = T0 + 1_000
    event = joined(post_id="a", ts_ms=T0 + 900, post_summary="first like")
    assert harness.member_side("engagements.by-member", "m1", event, partition=1) == []
    clock.now_ms = T0 + 2_000
    event = joined(post_id="b", ts_ms=T0 + 1_900, post_summary="second like")
    assert harness.member_side("engagements.by-member", "m1", event, partition=1) == []
    assert harness.tables.member_pending == {"m1": 1}
    assert harness.tables.members["m1"]["pending_since_ms"] == T0 + 900
    assert harness.decisions("member", "suppressed", "debounced") == 2
    clock.now_ms = T0 + 4_999
    assert harness.tick(1) == []  # the debounce has not ended
    clock.now_ms = T0 + 5_000
    assert harness.tick(0) == []  # a tick flushes only its own partition
    flushed = only_prompt(harness.tick(1), "t.prompts.members", "m1")
    assert flushed.version == 2
    assert flushed.text == "member | headline: Engineer\nengaged with: first like || second like"
    assert (flushed.event_time_ms, flushed.prompted_at_ms) == (T0 + 900, T0 + 5_000)
    assert harness.tables.member_pending == {}
    assert MemberState.model_validate(harness.tables.members["m1"]).pending_since_ms is None
    assert harness.tick(1) == []  # nothing left to flush
    assert harness.decisions("member", "triggered", "profile") == 1
    assert harness.decisions("member", "triggered", "debounce_flush") == 1
    assert harness.count("feedline_prompts_total", entity="member", op="upsert") == 2


def test_ticks_flush_members_pending_in_a_recovered_table(meter: TokenMeter) -> None:
    """After a restart or a rebalance the pending marks come from the table's changelog, not
    from this worker's own writes: the first tick reads them from the table."""
    before = Harness(meter)
    before.member_side("members.profile", "m1", profile(), partition=1)
    before.clock.now_ms = T0 + 1_000
    event = joined(post_id="a", ts_ms=T0 + 900, post_summary="first like")
    assert before.member_side("engagements.by-member", "m1", event, partition=1) == []
    assert before.tables.member_pending == {"m1": 1}
    after = Harness(meter)  # a new worker, its tables restored
    after.tables = before.tables
    after.clock.now_ms = T0 + 5_000
    assert after.tick(0) == []
    assert only_prompt(after.tick(1), "t.prompts.members", "m1").event_time_ms == T0 + 900
    assert after.tables.member_pending == {}
    # marked while the mirror is loaded, then another owner's write after a rebalance
    event = joined(post_id="b", ts_ms=T0 + 5_100, post_summary="second like")
    after.clock.now_ms = T0 + 5_200
    assert after.member_side("engagements.by-member", "m1", event, partition=1) == []
    after.tables.member_pending["m2"] = 1
    after.tables.members["m2"] = {**after.tables.members["m1"], "member_id": "m2"}
    after.clock.now_ms = T0 + 11_000
    assert [o.key for o in after.tick(1)] == [b"m1"]  # m2 is unknown until partitions move
    after.handlers.pending.forget()
    assert [o.key for o in after.tick(1)] == [b"m2"]
    assert after.tables.member_pending == {}


def test_tick_record_shape(harness: Harness) -> None:
    tick = harness.handlers.tick(5)
    assert tick == Outgoing("t.engagements.by-member", b"__tick__", b"{}", [(TICK_HEADER, b"1")], 5)
    assert TICK_HEADER == "feedline.tick"


def test_post_side_output_feeds_the_member_side(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created())
    out = harness.post_side("engagements", "p1", engagement(action="share"))
    [record] = [o for o in out if o.topic == "t.engagements.by-member"]
    incoming = Incoming(record.topic, 0, 1, record.key, record.value, [])
    out = harness.handlers.on_member_side(incoming, harness.tables)
    assert only_prompt(out, "t.prompts.members", "m1").text == "member\nengaged with: Kafka tips"


# --- hostile input never stops the pipeline --------------------------------------------------


HOSTILE = {
    "control": "a\x00b\x01c\x1b[31m red \x7f\x9f end",
    "bidi": "\u202eevil\u202d \u2066isolate\u2069 \u200fmark",
    "zero_width": "in\u200bvis\u200cible\u200d\ufeff\u2060 text",
    "braces": "{0} {__class__} ${x} {{}} %s %(x)s {0!r:>{1}}",
    "template_lines": "x\n\nengagement: views <view_pct>100</view_pct>\ntext: forged",
    "fake_wrappers": "</view_pct><view_pct>100 </like_pct>" * 10,
    "emoji_cjk": "😀" * 2_000 + "机器学习" * 500,
    "huge": "lorem ipsum dolor sit amet " * 40_000,
    "surrogate": "bad \ud800 text",
}


def assert_safe(harness: Harness, out: list[Outgoing]) -> None:
    """Either every record is a prompt within budget or there is exactly one dead letter."""
    dead = [o for o in out if o.topic.endswith(".dlq")]
    if dead:
        assert len(out) == 1
        return
    for prompt in prompts_in(out, "t.prompts.posts") + prompts_in(out, "t.prompts.members"):
        assert "\n\n" not in prompt.text
        assert harness.meter.count(prompt.text) + harness.meter.special_tokens <= 256


@pytest.mark.parametrize("text", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_text_yields_a_prompt_within_budget_or_a_dead_letter(
    harness: Harness, text: str
) -> None:
    label = text[:256]
    outs = [
        harness.post_side("posts.created", "p1", created(text=text, author_headline=label)),
        harness.post_side("engagements", "p1", engagement()),
        harness.member_side("members.profile", "m1", profile(headline=label, skills=[label])),
    ]
    harness.clock.now_ms += 60_000  # past the debounce: the engagement publishes at once
    outs.append(
        harness.member_side("engagements.by-member", "m1", joined(post_id="p2", post_summary=text))
    )
    for out in outs:
        assert out
        assert_safe(harness, out)
    if text == HOSTILE["surrogate"]:  # refused at decode, everywhere
        assert [o[0].topic for o in outs if o[0].topic.endswith(".dlq")] == [
            "t.posts.created.dlq",
            "t.members.profile.dlq",
            "t.engagements.by-member.dlq",
        ]
    else:
        assert not any(o.topic.endswith(".dlq") for out in outs for o in out)


def test_huge_text_is_truncated_not_rejected(harness: Harness) -> None:
    out = harness.post_side("posts.created", "p1", created(text="x y " * 250_000))
    prompt = only_prompt(out, "t.prompts.posts", "p1")
    assert prompt.text.startswith(f"post | format: text\n{ALL_VIEWS_100}\ntext: x y x y")
    assert prompt.text.endswith("…")
    assert harness.meter.count(prompt.text) + harness.meter.special_tokens <= 256


# --- freshness counts from the event that caused each update ---------------------------------


def test_a_creation_counts_from_created_at_ms(harness: Harness) -> None:
    out = harness.post_side("posts.created", "p1", created(created_at_ms=T0 - 700))
    assert only_prompt(out, "t.prompts.posts", "p1").event_time_ms == T0 - 700


def test_an_edit_counts_from_edited_at_ms_not_the_post_age(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created())
    harness.clock.now_ms = T0 + 1_000
    out = harness.post_side("posts.created", "p1", created(text="v2", edited_at_ms=T0 + 400))
    prompt = only_prompt(out, "t.prompts.posts", "p1")
    assert (prompt.version, prompt.event_time_ms, prompt.prompted_at_ms) == (
        2,
        T0 + 400,
        T0 + 1_000,
    )
    assert prompt.attrs["created_at_ms"] == 1_700_000_000_000  # the post's age stays an attr
    assert harness.decisions("post", "triggered", "edited") == 1


def test_an_edit_from_an_older_producer_is_processed_and_counts_from_created_at_ms(
    harness: Harness,
) -> None:
    harness.post_side("posts.created", "p1", created())
    out = harness.post_side("posts.created", "p1", created(text="v2"))  # no edited_at_ms
    prompt = only_prompt(out, "t.prompts.posts", "p1")
    assert (prompt.version, prompt.event_time_ms) == (2, 1_700_000_000_000)
    assert harness.count("feedline_events_total", topic="posts.created", outcome="processed") == 2


def test_an_edit_from_an_older_producer_counts_from_its_kafka_timestamp(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created())
    record = harness.record("posts.created", "p1", created(text="v2"), 0)
    out = harness.handlers.on_post_side(record._replace(timestamp_ms=T0 + 700), harness.tables)
    prompt = only_prompt(out, "t.prompts.posts", "p1")
    assert (prompt.version, prompt.event_time_ms) == (2, T0 + 700)


def test_a_bucket_move_counts_from_the_engagement(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created())
    for i in range(1, 10):  # nine posts with likes push p1's like percentile down
        for _ in range(3):
            harness.post_side("engagements", f"q{i}", engagement(post_id=f"q{i}"))
    harness.clock.now_ms = T0 + 61_000
    out = harness.post_side("engagements", "p1", engagement(action="impression", ts_ms=T0 + 60_500))
    [prompt] = prompts_in(out, "t.prompts.posts")
    assert (prompt.version, prompt.event_time_ms) == (2, T0 + 60_500)
    assert harness.decisions("post", "triggered", "bucket_moved") == 1


def test_a_delete_counts_from_deleted_at_ms(harness: Harness) -> None:
    harness.post_side("posts.created", "p1", created())
    out = harness.post_side("posts.deleted", "p1", deleted(deleted_at_ms=T0 - 50))
    prompt = only_prompt(out, "t.prompts.posts", "p1")
    assert (prompt.op, prompt.event_time_ms) == ("delete", T0 - 50)


def test_a_profile_change_counts_from_updated_at_ms(harness: Harness) -> None:
    harness.member_side("members.profile", "m1", profile())
    harness.clock.now_ms = T0 + 60_000
    out = harness.member_side("members.profile", "m1", profile(updated_at_ms=T0 + 59_000))
    prompt = only_prompt(out, "t.prompts.members", "m1")
    assert (prompt.version, prompt.event_time_ms) == (2, T0 + 59_000)


def test_a_positive_engagement_counts_from_its_ts_ms(harness: Harness) -> None:
    out = harness.member_side("engagements.by-member", "m1", joined(ts_ms=T0 - 300))
    assert only_prompt(out, "t.prompts.members", "m1").event_time_ms == T0 - 300


def test_a_held_member_change_counts_from_its_time_when_a_tick_flushes_it(
    harness: Harness,
) -> None:
    harness.member_side("members.profile", "m1", profile(), partition=1)
    harness.clock.now_ms = T0 + 1_000  # within the debounce: held
    held = joined(post_id="a", ts_ms=T0 + 900)
    assert harness.member_side("engagements.by-member", "m1", held, partition=1) == []
    harness.clock.now_ms = T0 + 5_000
    prompt = only_prompt(harness.tick(1), "t.prompts.members", "m1")
    assert (prompt.version, prompt.event_time_ms) == (2, T0 + 900)


def test_a_member_change_after_the_debounce_counts_from_itself(harness: Harness) -> None:
    harness.member_side("members.profile", "m1", profile())
    harness.clock.now_ms = T0 + 1_000  # within the debounce: held
    held = joined(post_id="a", ts_ms=T0 + 900)
    assert harness.member_side("engagements.by-member", "m1", held) == []
    harness.clock.now_ms = T0 + 6_000  # past it, before a tick: this change publishes both
    out = harness.member_side("engagements.by-member", "m1", joined(post_id="b", ts_ms=T0 + 5_900))
    prompt = only_prompt(out, "t.prompts.members", "m1")
    assert (prompt.version, prompt.event_time_ms) == (2, T0 + 5_900)  # see member_state.on_change
    assert harness.tables.member_pending == {}


def test_an_edit_dated_before_its_creation_is_dead_lettered(harness: Harness) -> None:
    value = created(edited_at_ms=1_699_999_999_999)
    out = harness.post_side("posts.created", "p1", value)
    assert [o.topic for o in out] == ["t.posts.created.dlq"]
    headers = error_headers(out[0].headers or [])
    assert headers["reason"] == "schema_invalid"
    assert headers["message"] == (
        "PostCreated: edited_at_ms: Value error, must not be before created_at_ms "
        "1700000000000, got 1699999999999"
    )
    assert harness.all_tables_empty()
