"""The embedding worker role: prompts in, embeddings out, on a plain aiokafka loop.

Partition/offset/commit behaviour: one consumer group (``feedline-embed``) over
``prompts.posts`` and ``prompts.members``, auto-commit off. Each poll (up to
``poll_max_records``, waiting at most ``poll_timeout_ms``) is one micro-batch: decoded,
embedded off the event loop in a single-thread executor, produced, and only once every produced
record is acknowledged (acks=all, idempotent producer) are the poll's offsets committed. A
crash between produce and commit re-embeds the poll: the same versions are published again,
which the index ignores. A commit that fails because the group rebalanced is logged; the new
owner of the partition re-processes from the last commit.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.encoder import TextEncoder
from models.settings import EncoderSettings
from streams.embed_handlers import EmbedHandlers
from streams.metrics import EmbedMetrics, serve_metrics
from streams.records import Outgoing, from_consumer_record
from streams.settings import KafkaSettings
from streams.topics import PROMPTS_MEMBERS, PROMPTS_POSTS, ensure_topics

log = logging.getLogger(__name__)


class EmbedWorkerSettings(BaseSettings):
    """The embedding worker role (env prefix ``FEEDLINE_EMBED_``)."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_EMBED_", extra="ignore")

    group_id: str = "feedline-embed"
    poll_max_records: int = Field(256, ge=1, description="most prompts per micro-batch")
    poll_timeout_ms: int = Field(200, ge=1, description="longest wait to fill a micro-batch")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65_535, description="0: no /metrics server")


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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect the producer and join the consumer group."""
        kafka = self.kafka
        self._producer = AIOKafkaProducer(
            acks="all", enable_idempotence=True, linger_ms=5, **kafka.aiokafka_config()
        )
        self._consumer = AIOKafkaConsumer(
            kafka.topic(PROMPTS_POSTS.name),
            kafka.topic(PROMPTS_MEMBERS.name),
            group_id=kafka.topic(self.settings.group_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **kafka.aiokafka_config(),
        )
        await self._producer.start()
        await self._consumer.start()

    async def stop(self) -> None:
        """Leave the group and flush; an unfinished batch is redone by the next owner."""
        self._stopping.set()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> EmbedWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Poll, embed, produce, commit — until ``stop()`` is called."""
        assert self._consumer is not None, "start() first"
        while not self._stopping.is_set():
            polled = await self._consumer.getmany(
                timeout_ms=self.settings.poll_timeout_ms,
                max_records=self.settings.poll_max_records,
            )
            records = [from_consumer_record(m) for messages in polled.values() for m in messages]
            if not records:
                continue
            await self._produce_all(await self.handlers.handle(records, self._embed))
            await self._commit()

    async def _embed(self, texts: list[str]) -> np.ndarray:
        self.metrics.batch_size.observe(len(texts))
        loop = asyncio.get_running_loop()
        tokens_before = self.encoder.tokens_encoded
        with self.metrics.batch_duration.time():
            vectors = await loop.run_in_executor(self._executor, self.encoder.encode, texts)
        self.metrics.tokens.inc(self.encoder.tokens_encoded - tokens_before)
        return vectors

    async def _produce_all(self, records: list[Outgoing]) -> None:
        assert self._producer is not None
        deliveries = [
            await self._producer.send(
                r.topic, value=r.value, key=r.key, headers=r.headers, partition=r.partition
            )
            for r in records
        ]
        await asyncio.gather(*deliveries)

    async def _commit(self) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit()
        except CommitFailedError as error:
            log.warning("commit failed after a rebalance; the batch will be redone: %s", error)


def run_embed_worker(
    kafka: KafkaSettings, settings: EmbedWorkerSettings, encoder_settings: EncoderSettings
) -> None:
    """Load the model, create missing topics, and run until SIGTERM/SIGINT."""
    ensure_topics(kafka)
    metrics = EmbedMetrics(CollectorRegistry())
    if settings.metrics_port:
        serve_metrics(metrics.registry, settings.metrics_port, settings.metrics_host)
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
