"""Helpers for integration tests: waiting, reading topics back, scraping metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import httpx
from confluent_kafka import Consumer, Message, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streams.settings import KafkaSettings

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.25
) -> T:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


def read_topic(
    kafka: KafkaSettings, topic: str, expect: int, timeout_s: float = 30.0
) -> list[Message]:
    """Read a topic from the beginning until ``expect`` records arrived (or the timeout)."""
    consumer = Consumer(
        {**kafka.confluent_config(), "group.id": f"test-{uuid.uuid4().hex}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        records: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expect and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append(message)
        return records
    finally:
        consumer.close()


def metric_value(url: str, name: str, labels: dict[str, str]) -> float:
    """The value of one sample scraped from a Prometheus endpoint (0.0 when absent)."""
    text = httpx.get(url, timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
