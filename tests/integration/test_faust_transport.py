"""``streams.faust_transport.Consumer`` on the real broker: it reads where the group resumes,
and when faust seeks back (it does after dropping fetched records in a rebalance, and after
recovery) every partition returns there, the ones with nothing committed yet included."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import faust
import pytest
from confluent_kafka.admin import NewTopic
from faust.types import TP

from streams.faust_transport import Consumer, use_feedline_transport
from streams.kafka_clients import admin_client, confluent_producer
from streams.settings import KafkaSettings

pytestmark = pytest.mark.integration

RECORDS = 5


async def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


def _publish(kafka: KafkaSettings, topic: str) -> None:
    producer = confluent_producer(kafka)
    for partition in (0, 1):
        for i in range(RECORDS):
            producer.produce(topic, value=str(i).encode(), partition=partition)
    assert producer.flush(30) == 0


@pytest.mark.timeout(180)
async def test_a_seek_back_rewinds_partitions_with_nothing_committed(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path
) -> None:
    kafka = kafka_factory(partitions=2, create=False)
    topic = kafka.topic(f"seek-back-{uuid.uuid4().hex[:6]}")
    admin = admin_client(kafka)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=30)
    _publish(kafka, topic)

    app = faust.App(
        kafka.topic(f"seek-back-{uuid.uuid4().hex[:6]}"),
        broker=kafka.faust_broker_url(),
        store="memory://",
        datadir=str(tmp_path),
        consumer_auto_offset_reset="earliest",
        topic_partitions=2,
        web_enabled=False,
    )
    use_feedline_transport(app)
    seen: list[tuple[int, int]] = []
    source = app.topic(topic, key_serializer="raw", value_serializer="raw", acks=False)

    @app.agent(source, concurrency=1)
    async def record_offsets(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            seen.append((event.message.partition, event.message.offset))

    await app.start()
    try:
        assert await _wait_for(lambda: len(seen) == 2 * RECORDS, 60), seen
        consumer = app.consumer
        assert isinstance(consumer, Consumer)
        # partition 0 has processed up to 3 committed; partition 1 nothing committed at all
        assert await consumer.commit_offsets({TP(topic, 0): 3})
        resume = await consumer.resume_offsets([TP(topic, 0), TP(topic, 1)])
        assert resume == {TP(topic, 0): 3, TP(topic, 1): 0}  # committed, else the log start
        seen.clear()

        await consumer.perform_seek()  # what faust runs after it dropped a fetched batch

        expected = {(0, o) for o in range(3, RECORDS)} | {(1, o) for o in range(RECORDS)}
        assert await _wait_for(lambda: set(seen) >= expected, 30), (
            f"after the seek back got {sorted(seen)}; partition 1 (nothing committed) must "
            "be fetched again from its log start"
        )
        assert not [r for r in seen if r[0] == 0 and r[1] < 3], "partition 0 resumes at 3"
    finally:
        await app.stop()
