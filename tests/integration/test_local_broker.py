"""The project's own broker script: `feedline kafka start` / `stop` from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams.kafka_jars import ensure_broker_jars
from streams.settings import LocalBrokerSettings

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
