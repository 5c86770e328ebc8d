"""``feedline export training-set`` on a real broker: prompts as of each engagement, hard
negatives, eval rows, invalid records skipped and counted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from feedline.dual_export_cli import export_training_set_command
from schemas import Engagement, PromptRequest, encode
from schemas.training_set import TrainingSetError, read_training_set
from streams.errors import TopicError
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from streams.training_export import export_training_set

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
# Engagements span T0+10 .. T0+110; with holdout 0.2 the split is T0+90.
ENGAGEMENTS = [  # member, post, action, offset
    ("m1", "p1", "impression", 10),
    ("m1", "p1", "like", 20),
    ("m1", "p2", "impression", 30),
    ("m1", "p3", "impression", 35),
    ("m2", "p2", "impression", 38),
    ("m2", "p2", "like", 40),
    ("m2", "p5", "impression", 45),  # p5 is deleted: never a negative, not a post
    ("m1", "p4", "impression", 50),
    ("m1", "p4", "click", 51),
    ("m1", "p3", "long_dwell", 110),  # eval target; so never m1's hard negative
]
POST_PROMPTS = [  # post, offset of the source event, text
    ("p1", 0, "p1 v1"),
    ("p1", 50, "p1 v2"),
    ("p2", 0, "p2 v1"),
    ("p3", 0, "p3 v1"),
    ("p4", 60, "p4 v1"),  # only after the example: the earliest is used
    ("p5", 0, "p5 v1"),
]
MEMBER_PROMPTS = [
    ("m1", 5, "m1 v1"),
    ("m1", 20, "m1 v2"),  # caused by the like at 20: lists p1, so not used for it
    ("m1", 95, "m1 v3"),
    ("m2", 60, "m2 v1"),  # nothing before m2's like: the earliest is used
]


def request(entity: str, entity_id: str, offset: int, text: str, version: int) -> PromptRequest:
    attrs = {"author_id": f"a-{entity_id}", "created_at_ms": T0 - 1} if entity == "post" else {}
    return PromptRequest.model_validate(
        {"entity": entity, "entity_id": entity_id, "version": version, "text": text,
         "prompt_version": f"{entity}-v2-test", "attrs": attrs, "event_time_ms": T0 + offset,
         "prompted_at_ms": T0 + offset + 1}
    )  # fmt: skip


def publish(kafka: KafkaSettings) -> None:
    with EventProducer(kafka) as producer:
        for member, post, action, offset in ENGAGEMENTS:
            fields = {"schema_version": 1, "member_id": member, "post_id": post,
                      "action": action, "ts_ms": T0 + offset}  # fmt: skip
            producer.publish(Engagement.model_validate(fields))
        for topic, entity, prompts in (
            ("prompts.posts", "post", POST_PROMPTS),
            ("prompts.members", "member", MEMBER_PROMPTS),
        ):
            for version, (entity_id, offset, text) in enumerate(prompts, start=1):
                value = encode(request(entity, entity_id, offset, text, version))
                producer.publish_raw(kafka.topic(topic), entity_id.encode(), value)
        deleted = request("post", "p5", 70, "", 9).model_copy(update={"op": "delete"})
        posts_topic = kafka.topic("prompts.posts")
        producer.publish_raw(posts_topic, b"p5", encode(deleted))
        producer.publish_raw(posts_topic, b"p1", b"{not json")
        wrong_entity = encode(request("member", "p1", 0, "x", 1))
        producer.publish_raw(posts_topic, b"p1", wrong_entity)
        producer.publish_raw(kafka.topic("engagements"), b"p1", b"{}")


def test_export_joins_prompts_as_of_each_engagement(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path
) -> None:
    kafka = kafka_factory()
    publish(kafka)
    result = export_training_set(kafka, tmp_path / "set", timeout_s=30)
    assert result.split_ms == T0 + 90
    assert result.skipped == {"engagements": 1, "prompts.posts": 2, "prompts.members": 0}
    assert sum(result.end_offsets["prompts.posts"].values()) == len(POST_PROMPTS) + 3
    training_set = read_training_set(tmp_path / "set")
    examples = training_set.examples.to_pylist()
    assert [(e["member_id"], e["post_id"], e["ts_ms"] - T0) for e in examples] == [
        ("m1", "p1", 20),
        ("m2", "p2", 40),
    ]
    m1, m2 = examples
    assert (m1["member_prompt"], m1["post_prompt"]) == ("m1 v1", "p1 v1")
    assert m1["hard_negative_ids"] == ["p2", "p4"]  # nearest to 20 first; p3 is liked later
    assert m1["hard_negative_prompts"] == ["p2 v1", "p4 v1"]
    assert (m2["member_prompt"], m2["post_prompt"], m2["hard_negative_ids"]) == (
        "m2 v1",
        "p2 v1",
        [],
    )
    assert training_set.eval.to_pylist() == [
        {
            "member_id": "m1",
            "member_prompt": "m1 v2",
            "relevant_post_ids": ["p3"],
            "seen_before_split": ["p1", "p2", "p4"],
        }
    ]
    posts = {row["post_id"]: row for row in training_set.posts.to_pylist()}
    assert sorted(posts) == ["p1", "p2", "p3", "p4"]
    assert posts["p1"] == {
        "post_id": "p1",
        "post_prompt": "p1 v2",
        "author_id": "a-p1",
        "created_at_ms": T0 - 1,
        "popularity": 1,
    }
    assert posts["p4"]["popularity"] == 1 and posts["p3"]["popularity"] == 0
    assert training_set.seen.num_rows == 6 and training_set.positives.num_rows == 3
    assert training_set.manifest.prompt_versions == {
        "post": "post-v2-test",
        "member": "member-v2-test",
    }


def test_missing_topics_and_an_empty_log_fail_clearly(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path
) -> None:
    with pytest.raises(TopicError, match="does not exist"):
        export_training_set(kafka_factory(create=False), tmp_path, timeout_s=10)
    with pytest.raises(TrainingSetError, match="no engagements"):
        export_training_set(kafka_factory(), tmp_path, timeout_s=10)
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_a_json_summary(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = kafka_factory()
    publish(kafka)
    monkeypatch.setenv("FEEDLINE_KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("FEEDLINE_KAFKA_TOPIC_PREFIX", kafka.topic_prefix)
    export = typer.Typer()
    export.callback()(lambda: None)  # keeps `training-set` a sub-command, as export_app does
    export.command("training-set")(export_training_set_command)
    app = typer.Typer()
    app.add_typer(export, name="export")  # as the lead registers it on feedline's export app
    out = tmp_path / "set"
    result = CliRunner().invoke(
        app, ["export", "training-set", "--out", str(out), "--max-hard-negatives", "1"]
    )
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    summary = json.loads(line)
    assert summary["path"] == str(out) and summary["examples"] == 2
    assert summary["skipped"]["prompts.posts"] == 2
    assert read_training_set(out).examples.column("hard_negative_ids").to_pylist() == [["p2"], []]
