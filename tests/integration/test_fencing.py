"""Fenced writers on the real broker: a worker that lost its partition publishes nothing more
for it, and the compacted ``embeddings.posts`` ends on the newest version of every key."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bundled model; never a download
from collections.abc import Callable

import numpy as np
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from confluent_kafka import TopicPartition as ConfluentPartition
from prometheus_client import CollectorRegistry

from feedline.soak_checks import Records, not_newest_last, read_to_end, update_version
from models import EncoderSettings, TextEncoder
from schemas import EmbeddingUpdate, PromptRequest, decode, encode
from streams.embed_txn import Outcome, PartitionTransactions
from streams.embed_worker import EmbedWorker, EmbedWorkerSettings
from streams.kafka_clients import confluent_consumer, confluent_producer
from streams.lag import consumer_group_lag
from streams.metrics import EmbedMetrics
from streams.records import Outgoing
from streams.settings import KafkaSettings
from tests.integration.kafka_tools import wait_until

pytestmark = pytest.mark.integration


def embedding(kafka: KafkaSettings, post_id: str, version: int) -> Outgoing:
    update = EmbeddingUpdate(
        entity="post", entity_id=post_id, version=version, dim=2,
        vector_b64=EmbeddingUpdate.encode_vector(np.ones(2)),
        model_version="m", prompt_version="p", event_time_ms=1, prompted_at_ms=1,
        embedded_at_ms=1, text=f"{post_id} v{version}",
    )  # fmt: skip
    return Outgoing(kafka.topic("embeddings.posts"), post_id.encode(), encode(update))


async def test_the_new_owner_fences_the_old_one(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(partitions=1)
    group = f"{kafka.topic_prefix}embed"
    tp = TopicPartition(kafka.topic("prompts.posts"), 0)
    old, new = (PartitionTransactions(kafka, group, 10_000) for _ in range(2))
    await old.open([tp])
    try:
        assert await old.commit(tp, [embedding(kafka, "p1", 1)], 1) is Outcome.COMMITTED
        await new.open([tp])  # the partition's next owner: fences the old producer
        zombie = await old.commit(tp, [embedding(kafka, "p1", 2)], 2)
        owner = await new.commit(tp, [embedding(kafka, "p1", 3)], 3)
    finally:
        await old.stop()
        await new.stop()
    assert (zombie, owner) == (Outcome.FENCED, Outcome.COMMITTED)
    assert not old.owns(tp)
    records = read_to_end(kafka, kafka.topic("embeddings.posts"))
    versions = [update_version(v) for v in records[b"p1"]]
    assert versions == [1, 3]  # the zombie's v2 was never committed
    assert not_newest_last(records, update_version) == []
    consumer = confluent_consumer(kafka, group)
    try:
        [offset] = await asyncio.to_thread(
            consumer.committed, [ConfluentPartition(tp.topic, 0)], 30
        )
    finally:
        consumer.close()
    assert offset.offset == 3  # the owner's offset, committed with its output


async def test_an_open_transaction_of_a_killed_owner_is_aborted_at_takeover(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    """A worker SIGKILLed mid-transaction leaves it open; the next owner's producer aborts it
    at once instead of holding the last stable offset for transaction.timeout.ms."""
    kafka = kafka_factory(partitions=1)
    group = f"{kafka.topic_prefix}embed"
    tp = TopicPartition(kafka.topic("prompts.posts"), 0)
    killed = PartitionTransactions(kafka, group, 600_000)
    await killed.open([tp])
    producer = killed._producers[tp]
    await producer.begin_transaction()
    await (await producer.send(kafka.topic("embeddings.posts"), b"half", key=b"p9"))
    # the process dies here: no commit, no abort (its producer is simply abandoned)
    successor = PartitionTransactions(kafka, group, 600_000)
    await successor.open([tp])
    try:
        assert await successor.commit(tp, [embedding(kafka, "p9", 5)], 1) is Outcome.COMMITTED
        records = await asyncio.to_thread(
            wait_until,
            lambda: read_to_end(kafka, kafka.topic("embeddings.posts"), timeout_s=10),
            60,
            "the successor's record past the aborted one",
        )
    finally:
        await successor.stop()
        with contextlib.suppress(KafkaError):  # the abandoned producer is fenced by now
            await producer.stop()
    [value] = records[b"p9"]
    assert value is not None and decode(EmbeddingUpdate, value).version == 5


async def test_workers_joining_and_leaving_mid_stream_embed_every_newest_version(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    """Two real embedding workers: a second one joins and leaves twice while edits keep
    arriving. Long polls make the rebalances land while a poll is in flight (its records were
    fetched after the new assignment reset the positions: dropping them without seeking back
    lost them, which the soak caught). Every prompt's newest version ends as the last record
    of its key in embeddings.posts, and every offset is committed."""
    kafka = kafka_factory(partitions=2)
    encoder = TextEncoder.load(EncoderSettings())
    settings = EmbedWorkerSettings(group_id="embed", poll_max_records=4, poll_timeout_ms=1_500)
    newest = {f"p{i:03d}": 0 for i in range(40)}
    stop = asyncio.Event()
    trickle = asyncio.create_task(asyncio.to_thread(_publish_prompts, kafka, newest, stop))
    first = EmbedWorker(kafka, settings, encoder, EmbedMetrics(CollectorRegistry()))
    await first.start()
    runs = [asyncio.create_task(first.run())]
    try:
        for _ in range(2):
            await asyncio.sleep(4)
            second = EmbedWorker(kafka, settings, encoder, EmbedMetrics(CollectorRegistry()))
            await second.start()
            joined = asyncio.create_task(second.run())
            await asyncio.sleep(6)
            joined.cancel()
            await asyncio.gather(joined, return_exceptions=True)
            await second.stop()  # leaves the group: another rebalance
        stop.set()
        await trickle

        def embedded() -> Records | None:
            records = read_to_end(kafka, kafka.topic("embeddings.posts"), timeout_s=30)
            last = {k.decode(): update_version(v[-1]) for k, v in records.items()}
            return records if last == newest else None

        records = await asyncio.to_thread(wait_until, embedded, 240, "every newest version")
    finally:
        stop.set()
        for run in runs:
            run.cancel()
        await asyncio.gather(trickle, *runs, return_exceptions=True)
        await first.stop()
    assert records is not None and not_newest_last(records, update_version) == []
    lag = await asyncio.to_thread(
        consumer_group_lag, kafka, kafka.topic("embed"), [kafka.topic("prompts.posts")]
    )
    assert set(lag.values()) == {0}


def _publish_prompts(kafka: KafkaSettings, newest: dict[str, int], stop: asyncio.Event) -> None:
    """New versions of the posts, round-robin, ~40 a second until ``stop``, as the prompt
    processor would publish them."""
    producer = confluent_producer(kafka)
    while not stop.is_set():
        for post_id in newest:
            newest[post_id] += 1
            request = PromptRequest(
                entity="post", entity_id=post_id, version=newest[post_id],
                text=f"{post_id} revision {newest[post_id]} about kafka streams",
                prompt_version="post-v2", event_time_ms=1, prompted_at_ms=1,
            )  # fmt: skip
            producer.produce(kafka.topic("prompts.posts"), encode(request), post_id.encode())
            producer.poll(0)
            time.sleep(0.025)
    assert producer.flush(30) == 0
