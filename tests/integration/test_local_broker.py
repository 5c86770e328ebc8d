"""The project's own broker script: `feedline kafka start` / `stop` from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.kafka_jars import ensure_broker_jars
from streams.producer import EventProducer
from streams.settings import KafkaSettings, LocalBrokerSettings
from streams.topics import ensure_topics
from tests.integration.events import post

pytestmark = pytest.mark.integration


def feedline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feedline", *args], capture_output=True, text=True, timeout=180,
        check=False, env=os.environ,
    )  # fmt: skip


def test_cli_starts_a_detached_broker_and_stops_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    started = feedline("kafka", "start", "--data-dir", str(data_dir))
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.strip().removeprefix("export FEEDLINE_KAFKA_BOOTSTRAP_SERVERS=")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert admin.list_topics(timeout=10).brokers
    assert (data_dir / "broker.json").exists()

    stopped = feedline("kafka", "stop", "--data-dir", str(data_dir))
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped", stopped.stderr
    time.sleep(0.5)
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000}).list_topics(
            timeout=3
        )
    again = feedline("kafka", "stop", "--data-dir", str(data_dir))
    assert again.returncode == 2 and "no broker state" in again.stderr


def test_jars_are_fetched_once_and_cached() -> None:
    settings = LocalBrokerSettings()
    libs = ensure_broker_jars(settings.cache_dir, settings.version)
    began = time.monotonic()
    assert ensure_broker_jars(settings.cache_dir, settings.version) == libs
    assert time.monotonic() - began < 0.5
    assert (libs / f"kafka_2.13-{settings.version}.jar").exists()
    assert any(libs.glob("log4j-slf4j-impl-*.jar"))  # the logging backend the POM omits


COORDINATOR_MOVING = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def committed_when_coordinator_answers(
    reader: Consumer, partition: TopicPartition, deadline_s: float = 60.0
) -> list[TopicPartition]:
    """``reader.committed``, retried while the error is retriable: just after a restart the
    group coordinator may still be loading its offsets (CI once got NOT_COORDINATOR)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return reader.committed([partition], timeout=30)
        except KafkaException as exception:
            error = exception.args[0]
            moving = error.retriable() or error.code() in COORDINATOR_MOVING
            if not moving or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_cli_restarts_a_killed_broker_on_its_data(tmp_path: Path) -> None:
    """kill -9, then `feedline kafka start` again: same address, topics and offsets kept."""
    data_dir = tmp_path / "kafka"
    started = feedline("kafka", "start", "--data-dir", str(data_dir))
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.strip().removeprefix("export FEEDLINE_KAFKA_BOOTSTRAP_SERVERS=")
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix="restart.")
    ensure_topics(kafka)
    with EventProducer(kafka) as producer:
        producer.publish(post("p1", "before the crash"))
    committed = TopicPartition(kafka.topic("posts.created"), 0, 1)
    member = Consumer({**kafka.confluent_config(), "group.id": "restart-group"})
    member.commit(offsets=[committed], asynchronous=False)
    member.close()

    pid = json.loads((data_dir / "broker.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    again = feedline("kafka", "start", "--data-dir", str(data_dir))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith(bootstrap)  # same port
    try:
        topics = AdminClient(kafka.confluent_config()).list_topics(timeout=10).topics
        assert kafka.topic("posts.created") in topics
        reader = Consumer({**kafka.confluent_config(), "group.id": "restart-group"})
        try:
            [offset] = committed_when_coordinator_answers(
                reader, TopicPartition(kafka.topic("posts.created"), 0)
            )
        finally:
            reader.close()
        assert offset.offset == 1
        assert feedline("kafka", "start", "--data-dir", str(data_dir)).returncode == 0  # no-op
    finally:
        assert feedline("kafka", "stop", "--data-dir", str(data_dir)).returncode == 0
