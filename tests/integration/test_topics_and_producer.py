"""Topic creation and the producer client against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.errors import ProduceError, TopicError
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from streams.topics import CATALOG, ensure_topics, required_topics
from tests.integration.events import engagement, post, profile
from tests.integration.kafka_tools import read_topic

pytestmark = pytest.mark.integration


def test_ensure_topics_creates_the_catalog_with_cleanup_policies(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(create=False)
    created = ensure_topics(kafka)
    assert sorted(created) == sorted(kafka.topic(s.name) for s in required_topics())
    assert ensure_topics(kafka) == []  # idempotent
    admin = AdminClient(kafka.confluent_config())
    resources = [ConfigResource("topic", kafka.topic(s.name)) for s in CATALOG]
    for resource, future in admin.describe_configs(resources).items():
        policy = future.result()["cleanup.policy"].value
        spec = next(s for s in CATALOG if kafka.topic(s.name) == resource.name)
        assert policy == spec.cleanup, resource.name


def test_mismatched_co_partitioned_topics_are_refused(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(partitions=2, create=False)
    admin = AdminClient(kafka.confluent_config())
    futures = admin.create_topics([NewTopic(kafka.topic("engagements"), num_partitions=3)])
    futures[kafka.topic("engagements")].result()
    with pytest.raises(TopicError, match="co-partitioned"):
        ensure_topics(kafka)


def test_producer_keys_and_partitions_match_the_java_partitioner(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(partitions=4)
    members = [f"member-{i}" for i in range(40)]
    with EventProducer(kafka) as producer:
        for member_id in members:
            producer.publish(profile(member_id, "Engineer", []))
        producer.publish(engagement("member-1", "post-9"))
        producer.publish(post("post-9", "hello"))
    records = read_topic(kafka, kafka.topic("members.profile"), expect=len(members))
    partitioner = DefaultPartitioner()
    assert len(records) == len(members)
    for record in records:
        assert json.loads(record.value())["member_id"] == record.key().decode()
        expected = partitioner(record.key(), list(range(4)), list(range(4)))
        assert record.partition() == expected, record.key()
    [liked] = read_topic(kafka, kafka.topic("engagements"), expect=1)
    assert liked.key() == b"post-9"  # engagements are keyed by post, like the posts topics


def test_bulk_publish_counts_deliveries_and_reports_every_failure(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory()
    posts = [post(f"bulk-{i}", f"post number {i}") for i in range(500)]
    with EventProducer(kafka) as producer:
        assert producer.publish_many(posts) == 500
        producer.publish_raw(kafka.topic("posts.created"), b"raw", b"{}", [("trace", b"t1")])
    assert producer.delivered == 501
    records = read_topic(kafka, kafka.topic("posts.created"), expect=501)
    assert sorted(r.key().decode() for r in records) == sorted([*(p.post_id for p in posts), "raw"])
    [raw] = [r for r in records if r.key() == b"raw"]
    assert raw.headers() == [("trace", b"t1")]
    assert {json.loads(r.value())["post_id"] for r in records if r.key() != b"raw"} == {
        p.post_id for p in posts
    }

    producer = EventProducer(kafka, delivery_timeout_ms=2_000)
    producer.publish_raw(kafka.topic("no-such-topic"), b"k", b"v")  # auto-create is off
    producer.publish(post("after-failure", "still delivered"))
    with pytest.raises(ProduceError, match=r"1 delivery failures: .*no-such-topic"):
        producer.flush(30)
    assert producer.delivered == 1
    producer.flush(30)  # the failure was reported once; the producer keeps working
    with pytest.raises(TypeError, match="not a producer event; one of PostCreated"):
        producer.publish("not an event")  # type: ignore[arg-type]


def test_produce_command_validates_the_whole_file_first(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path
) -> None:
    kafka = kafka_factory()
    good = {
        "topic": "posts.created",
        "value": json.loads(post("f1", "from a file").model_dump_json()),
    }
    bad_file = tmp_path / "bad.jsonl"
    bad_file.write_text(
        json.dumps(good) + "\n" + '{"topic": "posts.created", "value": {"post_id": 1}}\n'
    )
    env = {"FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "FEEDLINE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix}  # fmt: skip
    run = _feedline(["produce", str(bad_file)], env)
    assert run.returncode == 2 and "bad.jsonl:2" in run.stderr
    assert read_topic(kafka, kafka.topic("posts.created"), expect=1, timeout_s=3) == []

    good_file = tmp_path / "good.jsonl"
    good_file.write_text(json.dumps(good) + "\n")
    run = _feedline(["produce", str(good_file)], env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"PostCreated": 1}
    assert len(read_topic(kafka, kafka.topic("posts.created"), expect=1)) == 1


def _feedline(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "feedline", *args], env={**os.environ, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
