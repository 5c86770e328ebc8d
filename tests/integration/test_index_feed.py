"""The index feed on a real broker: replay, readiness, dead letters for bad updates, and
restarts from snapshots (restore + seek, offsets out of retention)."""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from prometheus_client import CollectorRegistry

from index_store import IndexSettings, IndexStore
from schemas import EmbeddingUpdate, encode
from service.feeds.feed_metrics import IndexMetrics
from service.feeds.index_feed import IndexFeed
from streams.dlq import error_headers
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from tests.integration.kafka_tools import read_topic

pytestmark = pytest.mark.integration

DIM = 8
MODEL = "test-model@1"


def update(
    post_id: str, version: int, vector: list[float] | None = None, **overrides: object
) -> bytes:
    values = np.array(vector, dtype=np.float32) if vector is not None else _unit(post_id, version)
    fields = {
        "entity": "post", "entity_id": post_id, "version": version, "dim": DIM,
        "vector_b64": EmbeddingUpdate.encode_vector(values), "model_version": MODEL,
        "prompt_version": "p1", "attrs": {"author_id": "a"}, "event_time_ms": 1,
        "prompted_at_ms": 1, "embedded_at_ms": 1, **overrides,
    }  # fmt: skip
    return encode(EmbeddingUpdate.model_validate(fields))


def _unit(post_id: str, version: int) -> np.ndarray:
    """A distinct unit vector per (post, version), so search rankings have no ties."""
    seed = zlib.crc32(f"{post_id}/{version}".encode())
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


async def run_feed(
    kafka: KafkaSettings, snapshots: Path | None = None
) -> tuple[IndexFeed, IndexStore, bool]:
    """Start a feed; returns it after it caught up (and stopped, writing its final snapshot
    when ``snapshots`` is a directory), and whether it was ready before running."""
    settings = IndexSettings(
        backend="flat",
        snapshots_enabled=snapshots is not None,
        snapshot_dir=snapshots or Path("unused"),
        consumer_group=f"{kafka.topic_prefix}index",
    )
    feed = IndexFeed(
        kafka, settings, IndexMetrics(CollectorRegistry()), dim=DIM, model_version=MODEL
    )
    await feed.start()
    ready_before_run = feed.ready.is_set()
    task = asyncio.create_task(feed.run())
    await asyncio.wait_for(feed.ready.wait(), 30)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await feed.stop()
    return feed, feed.store, ready_before_run


async def test_ready_only_after_replaying_to_the_end(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory()
    topic = kafka.topic("embeddings.posts")
    with EventProducer(kafka) as producer:
        for i in range(50):
            producer.publish_raw(topic, f"p{i}".encode(), update(f"p{i}", 1))
        producer.publish_raw(topic, b"p0", update("p0", 3))  # newer version wins
        producer.publish_raw(topic, b"p0", update("p0", 2))  # stale: ignored
        producer.publish_raw(topic, b"p1", None)  # tombstone: deleted
        producer.publish_raw(topic, b"p1", update("p1", 9))  # late insert of a deleted post

    feed, store, ready_before = await run_feed(kafka)
    assert not ready_before
    assert store.counts() == {"posts": 49, "members": 0, "deleted_posts": 1}
    assert store.post("p0").version == 3  # type: ignore[union-attr]
    assert store.post("p1") is None
    assert feed.lag() == 0

    _, replayed, _ = await run_feed(kafka)  # a restart replays to the identical index
    query = np.ones(DIM, dtype=np.float32) / math.sqrt(DIM)
    assert [h.post_id for h, _ in replayed.search(query, 49)] == [
        h.post_id for h, _ in store.search(query, 49)
    ]


async def test_empty_topics_are_ready_at_once(kafka_factory: Callable[..., KafkaSettings]) -> None:
    _, store, ready_before = await run_feed(kafka_factory())
    assert ready_before and store.counts()["posts"] == 0


async def test_invalid_updates_go_to_the_dead_letter_topic(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory()
    topic = kafka.topic("embeddings.posts")
    bad = {
        b"short": update("short", 1, vector=[1.0] * (DIM - 1), dim=DIM - 1),
        b"nan": update("nan", 1, vector=[math.nan] + [0.0] * (DIM - 1)),
        b"other-model": update("other-model", 1, model_version="someone-else@2"),
        b"garbage": b"\x00\x01not json",
    }
    with EventProducer(kafka) as producer:
        for key, value in bad.items():
            producer.publish_raw(topic, key, value)
        producer.publish_raw(topic, b"good", update("good", 1))

    feed, store, _ = await run_feed(kafka)
    assert store.counts()["posts"] == 1 and store.post("good") is not None
    letters = read_topic(kafka, topic + ".dlq", expect=4)
    reasons = {m.key(): error_headers(m.headers() or [])["reason"] for m in letters}
    assert reasons == {
        b"short": "dim_mismatch",
        b"nan": "non_finite",
        b"other-model": "unknown_model_version",
        b"garbage": "malformed_json",
    }
    assert {m.key(): m.value() for m in letters} == bad
    dead = feed.metrics.registry.get_sample_value(
        "feedline_dlq_messages_total", {"topic": "embeddings.posts", "reason": "non_finite"}
    )
    assert dead == 1.0


def answers(store: IndexStore) -> list[list[tuple[str, float, int]]]:
    queries = np.random.default_rng(3).standard_normal((4, DIM)).astype(np.float32)
    return [
        [(hit.post_id, round(hit.score, 5), record.version) for hit, record in store.search(q, 30)]
        for q in queries
    ]


def committed(kafka: KafkaSettings, topic: str, partitions: int) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    request = [ConfluentPartition(topic, p) for p in range(partitions)]
    group = f"{kafka.topic_prefix}index"
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, request)])
    return {tp.partition: tp.offset for tp in future[group].result(timeout=10).topic_partitions}


async def test_restart_restores_the_snapshot_and_seeks_past_it(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path
) -> None:
    kafka = kafka_factory()
    topic = kafka.topic("embeddings.posts")
    with EventProducer(kafka) as producer:
        for i in range(40):
            producer.publish_raw(topic, f"p{i}".encode(), update(f"p{i}", 1))
        producer.publish_raw(topic, b"p3", None)
    first, before, _ = await run_feed(kafka, tmp_path)
    assert first.plan is not None and first.plan.reason == "no_snapshot"
    assert first.applied == 41
    # the final snapshot covers everything, and only then were the offsets committed
    assert sum(committed(kafka, topic, 2).values()) == 41

    with EventProducer(kafka) as producer:  # what happens while the service is down
        producer.publish_raw(topic, b"p5", update("p5", 2))
        producer.publish_raw(topic, b"p6", None)
        producer.publish_raw(topic, b"p40", update("p40", 1))
        producer.publish_raw(topic, b"p3", update("p3", 7))  # late insert of a deleted post
    second, restored, ready_before = await run_feed(kafka, tmp_path)
    assert second.plan is not None and second.plan.reason == "restored"
    assert not ready_before
    assert second.applied == 4  # only the records after the snapshot's offsets
    assert restored.counts() == {"posts": 39, "members": 0, "deleted_posts": 2}
    assert restored.post("p5").version == 2  # type: ignore[union-attr]
    assert restored.post("p3") is None and restored.post("p6") is None

    _, replayed, _ = await run_feed(kafka)  # a full replay, no snapshot: the same index
    assert answers(restored) == answers(replayed)
    assert answers(before) != answers(restored)
    rebuilds = second.metrics.registry.get_sample_value(
        "feedline_index_rebuilds_total", {"reason": "no_snapshot"}
    )
    assert rebuilds is None


async def test_offsets_out_of_retention_rebuild_by_replay(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path
) -> None:
    kafka = kafka_factory(partitions=1)
    topic = kafka.topic("embeddings.posts")
    with EventProducer(kafka) as producer:
        for i in range(10):
            producer.publish_raw(topic, f"p{i}".encode(), update(f"p{i}", 1))
    await run_feed(kafka, tmp_path)
    with EventProducer(kafka) as producer:
        for i in range(10, 20):
            producer.publish_raw(topic, f"p{i}".encode(), update(f"p{i}", 1))
    # retention removes the head of the log, past the snapshot's offset (10); Kafka deletes
    # records of a compacted topic only when its policy also says "delete"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    policy = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "cleanup.policy", "compact,delete", incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    [altered] = admin.incremental_alter_configs([policy]).values()
    altered.result(timeout=10)
    [deleted] = admin.delete_records([ConfluentPartition(topic, 0, 15)]).values()
    deleted.result(timeout=10)

    feed, store, _ = await run_feed(kafka, tmp_path)
    assert feed.plan is not None and feed.plan.reason == "offsets_out_of_retention"
    rebuilds = feed.metrics.registry.get_sample_value(
        "feedline_index_rebuilds_total", {"reason": "offsets_out_of_retention"}
    )
    assert rebuilds == 1.0
    assert sorted(h.post_id for h, _ in store.search(np.ones(DIM, np.float32), 50)) == sorted(
        f"p{i}" for i in range(15, 20)
    )
