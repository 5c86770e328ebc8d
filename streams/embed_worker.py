"""The embedding worker role: prompts in, embeddings out, on a plain aiokafka loop.

Partition/offset/commit behaviour: one consumer group (``feedline-embed``) over
``prompts.posts`` and ``prompts.members``. Each poll (up to ``poll_max_records``, waiting at
most ``poll_timeout_ms``) is one micro-batch: decoded, embedded off the event loop in a
single-thread executor, then, per input partition, its outputs (embedding updates,
tombstones, dead letters) and its next offset are committed in one Kafka transaction by that
partition's own transactional producer (``streams.embed_txn``). A crash before the commit
leaves nothing visible; the partition's next owner aborts the open transaction and redoes
the batch from the committed offset.

Fenced writers: a worker produces only for partitions it owns. A rebalance waits for the
batch in hand (the rebalance listener takes the batch lock). A partition is processed only
after its producer started, which fences the previous owner, and after its position was
re-read from the committed offset; a poll that overlapped an assignment change, or records
of a partition without a producer yet, are dropped and the partition is sought back so they
are fetched again (a dropped record whose partition moved on would otherwise be skipped:
the soak caught exactly that).

A worker that lost a partition without noticing (a zombie) is fenced by the new owner's
producer: its transactions fail with ``ProducerFenced`` and none of its records is ever
read (consumers read ``read_committed``). So the newest version is always the last record
of its key in the compacted ``embeddings.*`` topics.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.encoder import TextEncoder
from models.settings import EncoderSettings
from streams.backoff import retry
from streams.broker_wait import when_broker_answers
from streams.embed_handlers import EmbedHandlers
from streams.embed_txn import Outcome, PartitionTransactions
from streams.kafka_clients import aiokafka_consumer
from streams.metrics import EmbedMetrics, serve_metrics
from streams.records import from_consumer_record
from streams.settings import KafkaSettings
from streams.topics import PROMPTS_MEMBERS, PROMPTS_POSTS, ensure_topics

log = logging.getLogger(__name__)

Polled = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class EmbedWorkerSettings(BaseSettings):
    """The embedding worker role (env prefix ``FEEDLINE_EMBED_``)."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_EMBED_", extra="ignore")

    group_id: str = "feedline-embed"
    poll_max_records: int = Field(256, ge=1, description="most prompts per micro-batch")
    poll_timeout_ms: int = Field(200, ge=1, description="longest wait to fill a micro-batch")
    transaction_timeout_ms: int = Field(
        60_000, ge=1_000, description="the broker aborts a transaction left open this long"
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65_535, description="0: no /metrics server")
    instance_id: str | None = Field(
        None,
        description="static group membership (unique per worker, stable across restarts, e.g. "
        "the pod name): a restarted worker takes its partitions back without a rebalance",
    )


class _Ownership(ConsumerRebalanceListener):
    """Revocation waits for the batch in hand; an assignment invalidates polls in flight and
    closes the producers of partitions no longer owned (new ones open in the worker loop)."""

    def __init__(self, worker: EmbedWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.worker.batch_lock:
            pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        worker = self.worker
        worker.assignments += 1
        worker.fenced.clear()
        await worker.transactions.close(worker.transactions.owned - set(assigned))


class EmbedWorker:
    """Consumes prompt requests and publishes embedding updates until ``stop()``."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: EmbedWorkerSettings,
        encoder: TextEncoder,
        metrics: EmbedMetrics,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.encoder = encoder
        self.metrics = metrics
        self.handlers = EmbedHandlers(kafka, metrics, encoder.model_version)
        self.group = kafka.topic(settings.group_id)
        self.transactions = PartitionTransactions(
            kafka, self.group, settings.transaction_timeout_ms
        )
        self.batch_lock = asyncio.Lock()
        self.assignments = 0
        """Bumped on every assignment: a poll that started in an older one is dropped."""
        self.fenced: set[TopicPartition] = set()
        """Partitions whose producer a newer owner fenced; not reopened before the next
        assignment (the group will take them away from this worker)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Join the consumer group (producers start per partition once assigned)."""
        self._consumer = aiokafka_consumer(
            self.kafka, group_id=self.group, group_instance_id=self.settings.instance_id
        )
        self._consumer.subscribe(
            [self.kafka.topic(PROMPTS_POSTS.name), self.kafka.topic(PROMPTS_MEMBERS.name)],
            listener=_Ownership(self),
        )
        await self._consumer.start()

    async def stop(self) -> None:
        """Leave the group; an open transaction is aborted by the next owner."""
        self._stopping.set()
        if self._consumer is not None:
            await self._consumer.stop()
        await self.transactions.stop()
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> EmbedWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The started consumer (``start()`` first)."""
        if self._consumer is None:
            raise RuntimeError("EmbedWorker.start() has not been called")
        return self._consumer

    async def run(self) -> None:
        """Poll, embed, and commit each partition's outputs with its offset — until
        ``stop()`` is called."""
        while not self._stopping.is_set():
            async with self.batch_lock:
                await self._own_assigned()
            epoch = self.assignments
            polled = await self.consumer.getmany(
                timeout_ms=self.settings.poll_timeout_ms,
                max_records=self.settings.poll_max_records,
            )
            if not polled:
                continue
            async with self.batch_lock:
                if epoch == self.assignments:
                    await self._process(polled)
                else:  # an assignment changed meanwhile: fetch these again, in order
                    self._rewind(polled)

    async def _own_assigned(self) -> None:
        """Open producers for assigned partitions that have none, then read their positions
        from the committed offsets (after the open fenced the previous owner); records of
        them polled before are dropped by ``_process`` and fetched again from there."""
        missing = self.consumer.assignment() - self.transactions.owned - self.fenced
        if not missing:
            return
        await retry(
            lambda: self.transactions.open(missing),
            self.kafka.backoff(),
            f"starting the transactional producers of {len(missing)} partitions",
            retry_on=(KafkaError, OSError),
        )
        committed = await self.consumer.seek_to_committed(*missing)
        # no commit yet (None; aiokafka also leaves 0 alone): start at the beginning, whatever
        # was polled meanwhile
        never = [tp for tp, offset in committed.items() if not offset]
        if never:
            await self.consumer.seek_to_beginning(*never)

    def _rewind(self, polled: Polled) -> None:
        """Seek every still-assigned partition of ``polled`` back to its first record there:
        aiokafka's position moved past records that were dropped, not processed. Partitions
        without a producer yet are positioned again by ``_own_assigned`` (committed offset);
        fenced ones are left alone (the group takes them away)."""
        assigned = self.consumer.assignment()
        for tp, batch in polled.items():
            if tp in assigned and tp not in self.fenced and batch:
                self.consumer.seek(tp, batch[0].offset)

    async def _process(self, polled: Polled) -> None:
        self._rewind({tp: b for tp, b in polled.items() if not self.transactions.owns(tp)})
        owned = {tp: batch for tp, batch in polled.items() if self.transactions.owns(tp)}
        records = [from_consumer_record(m) for batch in owned.values() for m in batch]
        if not records:
            return
        # where each partition resumes after this poll (past transaction markers too)
        ends = {tp: await self.consumer.position(tp) for tp in owned}
        outputs = await self.handlers.handle_by_partition(records, self._embed)
        outcomes = await asyncio.gather(
            *(
                self.transactions.commit(tp, outputs[(tp.topic, tp.partition)], ends[tp])
                for tp in owned
            )
        )
        for tp, outcome in zip(owned, outcomes, strict=True):
            self.metrics.transactions.labels(outcome.value).inc()
            if outcome is Outcome.FENCED:
                self.fenced.add(tp)
            # FAILED: the next _own_assigned reopens it and seeks back to the committed offset

    async def _embed(self, texts: list[str]) -> np.ndarray:
        self.metrics.batch_size.observe(len(texts))
        loop = asyncio.get_running_loop()
        tokens_before = self.encoder.tokens_encoded
        with self.metrics.batch_duration.time():
            vectors = await loop.run_in_executor(self._executor, self.encoder.encode, texts)
        self.metrics.tokens.inc(self.encoder.tokens_encoded - tokens_before)
        return vectors


def run_embed_worker(
    kafka: KafkaSettings, settings: EmbedWorkerSettings, encoder_settings: EncoderSettings
) -> None:
    """Wait for the broker, create missing topics, load the model, and run until
    SIGTERM/SIGINT."""
    metrics = EmbedMetrics(CollectorRegistry())
    if settings.metrics_port:
        serve_metrics(metrics.registry, settings.metrics_port, settings.metrics_host)
    when_broker_answers(kafka, "embedding worker", lambda: ensure_topics(kafka))
    encoder = TextEncoder.load(encoder_settings)
    asyncio.run(_serve_until_signalled(EmbedWorker(kafka, settings, encoder, metrics)))


async def _serve_until_signalled(worker: EmbedWorker) -> None:
    import signal

    loop = asyncio.get_running_loop()
    async with worker:
        runner = asyncio.create_task(worker.run())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.cancel)
        try:
            await runner
        except asyncio.CancelledError:
            log.info("embedding worker stopping")
