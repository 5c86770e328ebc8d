"""The serve role's topic reader on a real broker: positions move only when a batch is handled,
past transaction markers too; catching up, lag, commits, and a clear error for absent topics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import TopicPartition

from service.feeds.topic_reader import TopicReader
from streams.errors import TopicError
from streams.kafka_clients import aiokafka_consumer, confluent_producer
from streams.settings import KafkaSettings

pytestmark = pytest.mark.integration


def publish_in_a_transaction(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    """``values`` to partition 0 in one committed transaction: a control record follows them."""
    producer = confluent_producer(kafka, **{"transactional.id": f"reader-test-{topic}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, value=value, key=b"k", partition=0)
    producer.commit_transaction(30)


async def stable_end(kafka: KafkaSettings, topic: str, partition: int, wanted: int) -> None:
    """Wait until ``read_committed`` readers see ``wanted`` as the end of ``topic[partition]``:
    the broker writes a transaction's commit marker after ``commit_transaction`` returned, and
    until then the stable end stays before the transaction."""
    consumer = aiokafka_consumer(kafka, group_id=None)
    await consumer.start()
    tp = TopicPartition(topic, partition)
    try:
        for _ in range(100):
            if (await consumer.end_offsets([tp]))[tp] == wanted:
                return
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
    raise AssertionError(f"the stable end of {tp} never reached {wanted}")


async def read_until_caught_up(reader: TopicReader) -> list[bytes]:
    seen: list[bytes] = []
    for _ in range(40):
        if reader.caught_up():
            return seen
        polled = await reader.read()
        before = dict(reader.positions)
        seen += [r.value for records in polled.values() for r in records if r.value is not None]
        assert reader.positions == before, "positions moved before the batch was handled"
        await reader.advance(polled)
    raise AssertionError(f"not caught up: {reader.positions} < {reader.targets}")


async def test_positions_follow_handled_batches_past_transaction_markers(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(partitions=2)
    topic = kafka.topic("engagements")
    publish_in_a_transaction(kafka, topic, [b"a", b"b", b"c"])
    await stable_end(kafka, topic, 0, 4)
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async with TopicReader(kafka, [topic], max_records=2) as reader:
        assert reader.targets == {p0: 4, p1: 0}  # 3 records and the commit marker
        assert reader.positions == {p0: 0, p1: 0} and not reader.caught_up()
        assert await read_until_caught_up(reader) == [b"a", b"b", b"c"]
        assert reader.positions == {p0: 4, p1: 0}  # past the marker, which is no record
        assert reader.lag() == 0
        with pytest.raises(RuntimeError, match="commits nothing"):
            await reader.commit(reader.positions)

        publish_in_a_transaction(kafka, topic, [b"d"])
        assert reader.reached(reader.targets)
        await stable_end(kafka, topic, 0, 6)
        ends = await reader.end_offsets()
        assert not reader.reached(ends)
        reader.seek({p0: 2})  # back: a replay reads again what follows
        assert reader.positions == {p0: 2, p1: 0}
        seen: list[bytes] = []
        while not reader.reached(ends):
            polled = await reader.read()
            seen += [r.value for records in polled.values() for r in records if r.value]
            await reader.advance(polled)
        assert seen == [b"c", b"d"] and reader.positions == {p0: 6, p1: 0}


async def test_a_reader_with_a_group_commits_what_it_is_told(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(partitions=1)
    topic = kafka.topic("engagements")
    publish_in_a_transaction(kafka, topic, [b"a", b"b"])
    await stable_end(kafka, topic, 0, 3)
    tp = TopicPartition(topic, 0)
    async with TopicReader(kafka, [topic], group_id=f"{topic}.reader") as reader:
        await read_until_caught_up(reader)
        await reader.commit({tp: 1})  # e.g. what a snapshot covers, not what was read
    check = aiokafka_consumer(kafka, group_id=f"{topic}.reader")
    await check.start()
    try:
        assert await check.committed(tp) == 1
    finally:
        await check.stop()


async def test_absent_topics_fail_with_the_hint(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(create=False)
    reader = TopicReader(kafka, [kafka.topic("engagements")], absent_hint="create them first")
    with pytest.raises(TopicError, match=r"none of '.*engagements' exists; create them first"):
        await reader.open()
    await reader.close()
    with pytest.raises(ValueError, match="max_records"):
        TopicReader(kafka, ["x"], max_records=0)
