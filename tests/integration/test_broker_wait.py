"""Broker faults, each on a private broker: a role started before its broker waits for it,
then processes, and after a kill -9 restarts on its local RocksDB table state; aiokafka
clients started while the broker is down start once it is back; long-lived clients ride out
a SIGKILL of the broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from feedline.processes import RoleProcess
from processors.engagement_history import MemberHistories
from schemas import PromptRequest
from service.feeds.history_feed import HistoryFeed
from streams.kafka_clients import aiokafka_consumer, aiokafka_producer
from streams.local_broker import LocalKafka
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from streams.topics import PROMPTS_POSTS, ensure_topics
from tests.integration.events import engagement, post
from tests.integration.kafka_tools import read_topic, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def stopped_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A private broker that has run once (so its address is fixed) and is stopped now."""
    broker = LocalKafka(tmp_path / "kafka")
    broker.start()
    broker.stop()
    yield broker
    broker.stop()


def prompts(kafka: KafkaSettings, expect: int, timeout_s: float = 90) -> list[PromptRequest]:
    records = read_topic(kafka, kafka.topic(PROMPTS_POSTS.name), expect, timeout_s)
    return [PromptRequest.model_validate_json(r.value() or b"") for r in records]


def test_a_worker_started_before_the_broker_waits_then_processes_and_restarts_on_its_state(
    stopped_broker: LocalKafka, tmp_path: Path
) -> None:
    kafka = KafkaSettings(bootstrap_servers=stopped_broker.bootstrap_servers, topic_prefix="bw.",
                          retry_backoff_max_s=2.0)  # fmt: skip
    env = {
        "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FEEDLINE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "FEEDLINE_KAFKA_RETRY_BACKOFF_MAX_S": "2",
        "FEEDLINE_PROMPTS_DATA_DIR": str(tmp_path / "prompts"),
        "FEEDLINE_PROMPTS_INSTANCE_ID": "prompts-1",
        "FEEDLINE_PROMPTS_POST_MIN_INTERVAL_S": "0",
        "FEEDLINE_LOG_LEVEL": "INFO",
    }
    worker = RoleProcess("prompts", ["worker", "prompts"], env, tmp_path / "logs")
    worker.start()
    try:
        wait_until(lambda: "not answering (attempt 2)" in worker.log_tail(), 120,
                   "the worker to retry the broker")  # fmt: skip
        assert worker.running, worker.log_tail()

        stopped_broker.start()
        ensure_topics(kafka)
        with EventProducer(kafka) as producer:
            producer.publish(post("p1", "first version"))
        [first] = prompts(kafka, 1)
        assert (first.entity_id, first.version) == ("p1", 1), worker.log_tail()
        assert "prompt processor: broker answered after" in worker.log_tail()

        worker.kill()
        worker.start()
        with EventProducer(kafka) as producer:
            producer.publish(post("p1", "second version"))
        # p1's own record may be processed again (killed before its offset was committed):
        # at-least-once, a replay only adds a version
        [edit] = wait_until(lambda: [p for p in prompts(kafka, 3, 5) if "second" in p.text], 120,
                            "the edit's prompt after the restart")  # fmt: skip
        assert edit.version > first.version  # the post's state survived the kill
        log = worker.log_tail(20_000)
        assert log.count(f"local table state in {tmp_path / 'prompts'} kept") == 1, log
        identity = json.loads((tmp_path / "prompts" / "changelog-identity.json").read_text())
        assert "bw.feedline-prompts-posts-changelog" in identity
    finally:
        worker.stop()


async def test_clients_started_while_the_broker_is_down_start_once_it_is_back(
    stopped_broker: LocalKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """aiokafka alone raises "Unable to bootstrap" from ``start()``; feedline's clients wait."""
    kafka = KafkaSettings(bootstrap_servers=stopped_broker.bootstrap_servers, topic_prefix="pb.",
                          retry_backoff_max_s=1.0)  # fmt: skip
    topic = kafka.topic(PROMPTS_POSTS.name)
    producer = aiokafka_producer(kafka)
    consumer = aiokafka_consumer(kafka)
    starting = asyncio.gather(producer.start(), consumer.start())
    try:
        await asyncio.sleep(3)
        assert not starting.done()  # still waiting, not failed
        assert "bootstrap failed (attempt 2)" in caplog.text
        await asyncio.to_thread(stopped_broker.start)
        await asyncio.to_thread(ensure_topics, kafka)
        await asyncio.wait_for(starting, 60)
        await producer.send_and_wait(topic, b"after the wait", key=b"k", partition=0)
        consumer.assign([TopicPartition(topic, 0)])
        record = await asyncio.wait_for(consumer.getone(), 30)
        assert record.value == b"after the wait"
    finally:
        starting.cancel()
        await producer.stop()
        await consumer.stop()


async def test_the_history_feed_and_a_producer_recover_from_a_broker_kill(tmp_path: Path) -> None:
    """Long-lived clients of the service ride out a SIGKILL of the broker and its restart
    on its data: no process restart, the next record arrives."""
    broker = LocalKafka(tmp_path / "kafka")
    kafka = KafkaSettings(bootstrap_servers=broker.start(), topic_prefix="hf.")
    ensure_topics(kafka)
    histories = MemberHistories()
    try:
        with EventProducer(kafka) as producer:
            async with HistoryFeed(kafka, histories) as feed:
                follower = asyncio.create_task(feed.run())
                producer.publish(engagement("m1", "p1"))
                producer.flush()
                await async_wait(lambda: len(histories.get("m1")) == 1, 60, "the first record")

                broker.kill()
                producer.publish(engagement("m1", "p2"))  # queued while the broker is down
                await asyncio.sleep(3)
                await asyncio.to_thread(broker.start)
                producer.publish(engagement("m1", "p3"))
                producer.flush()
                await async_wait(lambda: len(histories.get("m1")) == 3, 90,
                                 "the records sent around the restart")  # fmt: skip
                assert not follower.done()
                follower.cancel()
        assert [e.post_id for e in histories.get("m1")] == ["p1", "p2", "p3"]
    finally:
        broker.stop()


async def async_wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)
