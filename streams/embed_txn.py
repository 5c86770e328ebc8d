"""Fenced writers for the embedding worker: one transactional producer per owned input partition.

A poll's outputs for input partition ``tp`` (embedding updates, tombstones, dead letters) and
``tp``'s next offset commit in one Kafka transaction, so a committed offset always has its
effects and an aborted batch has none. The producer's ``transactional_id`` is derived from
``tp`` (``<group>.<topic>.<partition>``), which is what fences a worker that lost ``tp``:

* the partition's next owner starts a producer with the same id; ``InitProducerId`` bumps the
  id's epoch and completes or aborts the previous owner's open transaction before the new
  owner reads the committed offset (``open()``), so it resumes exactly after the last batch
  that committed;
* from then on every request of the old owner's producer fails with ``ProducerFenced``: a
  zombie (a worker kicked out of the group but still running, say across a broker restart)
  can send, but nothing it sends is ever visible to ``read_committed`` consumers, and its
  offsets are never committed. The last record of every key in ``embeddings.*`` is
  therefore the newest version, and a rebuild from the compacted topics gives the index the
  live service holds.

Why not one producer per worker: aiokafka's ``send_offsets_to_transaction`` speaks
``TxnOffsetCommit`` v0 (group id only, no member id or generation, so no KIP-447 fencing by
the group coordinator); ids per input partition are Kafka Streams' original exactly-once
design and need no group metadata. A SIGKILLed owner's open transaction is also aborted the
moment its partition is taken over, instead of holding the last stable offset for
``transaction.timeout.ms``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from enum import Enum

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from streams.kafka_clients import aiokafka_producer
from streams.records import Outgoing
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)


class Outcome(Enum):
    """How one partition's transaction ended."""

    COMMITTED = "committed"
    FENCED = "fenced"
    """A newer owner took the partition over; nothing was visible or committed."""
    FAILED = "failed"
    """The transaction aborted (broker error); redo the batch from the committed offset."""


def transactional_id(group: str, tp: TopicPartition) -> str:
    """The id of the producer that writes for input partition ``tp`` of ``group``.

    >>> transactional_id("feedline-embed", TopicPartition("prompts.posts", 3))
    'feedline-embed.prompts.posts.3'
    """
    return f"{group}.{tp.topic}.{tp.partition}"


class PartitionTransactions:
    """The transactional producers of the input partitions this worker owns."""

    def __init__(self, kafka: KafkaSettings, group: str, transaction_timeout_ms: int) -> None:
        self.kafka = kafka
        self.group = group
        self.transaction_timeout_ms = transaction_timeout_ms
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}

    def owns(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` has a live producer (assigned, opened, not fenced)."""
        return tp in self._producers

    @property
    def owned(self) -> set[TopicPartition]:
        """The partitions with a live producer."""
        return set(self._producers)

    async def open(self, tps: Iterable[TopicPartition]) -> None:
        """Start (and so fence the previous owner of) a producer for every partition in
        ``tps`` that has none; they start concurrently."""
        new = [tp for tp in tps if tp not in self._producers]
        producers = [self._new_producer(tp) for tp in new]
        results = await asyncio.gather(*(p.start() for p in producers), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        for tp, producer, result in zip(new, producers, results, strict=True):
            if isinstance(result, BaseException):
                await producer.stop()
            else:
                self._producers[tp] = producer
        if failed:
            raise failed[0]

    async def close(self, tps: Iterable[TopicPartition]) -> None:
        """Stop the producers of ``tps`` (an open transaction is left to the next owner,
        whose ``open()`` aborts it)."""
        producers = [self._producers.pop(tp) for tp in list(tps) if tp in self._producers]
        await asyncio.gather(*(p.stop() for p in producers), return_exceptions=True)

    async def commit(
        self, tp: TopicPartition, records: Sequence[Outgoing], next_offset: int
    ) -> Outcome:
        """Send ``records`` and commit ``tp`` at ``next_offset`` in one transaction.

        Unless ``COMMITTED``, nothing of it is visible and nothing committed, and ``tp``'s
        producer is closed: after ``FENCED`` the partition belongs to another worker; after
        ``FAILED`` the caller reopens it (``open``) and redoes the batch.
        """
        producer = self._producers.get(tp)
        if producer is None:
            return Outcome.FENCED
        sends: list[asyncio.Future[object]] = []
        try:
            async with producer.transaction():
                sends.append(_transaction_end(producer))
                for r in records:
                    sends.append(
                        await producer.send(
                            r.topic, r.value, key=r.key, headers=r.headers, partition=r.partition
                        )
                    )
                await producer.send_offsets_to_transaction({tp: next_offset}, self.group)
        except KafkaError as error:
            # the sends failed with the transaction: collect their errors (else asyncio logs
            # "exception was never retrieved" for each)
            sends.append(_transaction_end(producer))  # a fatal error replaces the first one
            await asyncio.gather(*sends, return_exceptions=True)
            await self.close([tp])
            if isinstance(error, ProducerFenced):
                log.warning("%s[%d]: fenced by a newer owner; dropping its batch", *tp)
                return Outcome.FENCED
            log.warning("%s[%d]: transaction failed; the batch will be redone: %r", *tp, error)
            return Outcome.FAILED
        return Outcome.COMMITTED

    async def stop(self) -> None:
        """Stop every producer."""
        await self.close(list(self._producers))

    def _new_producer(self, tp: TopicPartition) -> AIOKafkaProducer:
        return aiokafka_producer(
            self.kafka,
            transactional_id=transactional_id(self.group, tp),
            transaction_timeout_ms=self.transaction_timeout_ms,
        )


def _transaction_end(producer: AIOKafkaProducer) -> asyncio.Future[object]:
    """The future aiokafka resolves when the current transaction ends. When the transaction
    fails, aiokafka sets the error on it (and on a fresh one, after a fatal error such as
    fencing) without any caller awaiting it, so asyncio would log "Future exception was never
    retrieved" with a traceback at every fencing; the caller gathers it with the sends."""
    future: asyncio.Future[object] = producer._txn_manager.wait_for_transaction_end()
    return future
