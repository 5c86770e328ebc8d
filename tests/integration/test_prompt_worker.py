"""The prompt processor alone on a real broker: its tables (percentile sketches, post state)
live in Faust changelogs, so a restart resumes where it left off instead of starting over."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner

from feedline.processes import RoleProcess
from processors.percentiles import to_percentile
from schemas import PromptRequest
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from tests.integration.events import post
from tests.integration.kafka_tools import read_topic, wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 2
FOLLOWERS = re.compile(r"<follower_pct>(\d+)</follower_pct>")


def expected_percentile(post_ids: list[str], followers: dict[str, int], probe: str) -> int:
    """Exact percentile of the probe's followers among the posts of its partition."""
    partitioner = DefaultPartitioner()
    partitions = list(range(PARTITIONS))
    home = partitioner(probe.encode(), partitions, partitions)
    peers = [
        followers[p] for p in post_ids if partitioner(p.encode(), partitions, partitions) == home
    ]
    return to_percentile(sum(v <= followers[probe] for v in peers) / len(peers))


def test_sketches_and_post_state_survive_a_restart(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path
) -> None:
    kafka = kafka_factory(partitions=PARTITIONS)
    env = {
        "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FEEDLINE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "FEEDLINE_KAFKA_PARTITIONS": str(PARTITIONS),
        "FEEDLINE_PROMPTS_DATA_DIR": str(tmp_path / "prompts"),
    }
    worker = RoleProcess("prompts", ["worker", "prompts"], env, tmp_path / "logs").start()
    post_ids = [f"post{i:03d}" for i in range(120)]
    followers = dict(
        zip(post_ids, random.Random(3).sample(range(1, 1001), len(post_ids)), strict=True)
    )
    with EventProducer(kafka) as producer:
        for post_id in post_ids:
            producer.publish(
                post(post_id, f"text of {post_id}", author_followers=followers[post_id])
            )
    prompts_topic = kafka.topic("prompts.posts")
    wait_until(
        lambda: len(read_topic(kafka, prompts_topic, 120, timeout_s=2)) >= 120,
        120,
        f"120 post prompts\n{worker.log_tail()}",
    )
    assert worker.stop() == 0

    worker.start()
    probe = "probe"
    followers[probe] = 500
    with EventProducer(kafka) as producer:
        producer.publish(post(probe, "a probe", author_followers=500))
        producer.publish(post("post000", "edited text"))
    records = wait_until(
        lambda: _prompts_for(kafka, {probe, "post000"}, 122),
        120,
        f"prompts after the restart\n{worker.log_tail()}",
    )
    worker.stop()

    rendered = FOLLOWERS.search(records[probe].text)
    assert rendered is not None, records[probe].text
    assert abs(int(rendered.group(1)) - expected_percentile(post_ids, followers, probe)) <= 2
    edit = records["post000"]
    assert edit.version == 2 and "edited text" in edit.text  # the post table was recovered
    changelog = read_topic(kafka, kafka.topic("feedline-prompts-sketches-changelog"), expect=1)
    assert changelog and json.loads(changelog[0].key()).split("@")[0] in {
        "views",
        "likes",
        "comments",
        "shares",
        "followers",
    }


def _prompts_for(kafka: KafkaSettings, ids: set[str], total: int) -> dict[str, PromptRequest]:
    records = read_topic(kafka, kafka.topic("prompts.posts"), total, timeout_s=2)
    latest = {}
    for record in records:
        prompt = PromptRequest.model_validate_json(record.value())
        if prompt.entity_id in ids:
            latest[prompt.entity_id] = prompt
    return latest if len(records) >= total and set(latest) == ids else {}
