"""faust-streaming's aiokafka transport with the pieces the prompt processor needs changed.

* ``Producer``: idempotent with ``acks=all`` like every other feedline producer (faust turns
  idempotence on only in its exactly-once mode), so a retry after a broker restart neither
  duplicates nor reorders a changelog or prompt record.
* Both the producer's and the consumer's aiokafka clients bootstrap patiently
  (``streams.kafka_clients.patient_bootstrap``): faust starts them only after its tables
  and agents, seconds after the role's wait for the broker, and aiokafka's one-shot
  bootstrap made the worker exit when the broker restarted in between.
* ``Consumer``: ``commit_offsets()`` commits exactly the offsets given. faust's own
  ``commit()`` computes them from its acknowledgements, which run ahead of processing (see
  ``streams.prompt_commits``); the prompt processor disables those acknowledgements and
  commits what its ``OffsetLedger`` says. ``seek_partition()`` seeks on the consumer's own
  thread (faust's ``seek()`` calls aiokafka from the caller's thread). faust's read offsets
  are kept for table changelogs only: for every other partition faust would drop a record
  below the offset it last delivered, which after a seek back is exactly what must be
  fetched again; the ledger skips duplicates itself. ``seek_to_committed()`` also rewinds
  partitions with nothing committed, which aiokafka leaves where they are.
  ``resume_offsets()`` reads where the group resumes with the same client; ``end_offsets()``
  and ``refetch()`` serve the committer's stall check.
* ``TrackedTable``: a ``faust.Table`` whose changelog writes are handed to a
  ``DeliveryTracker``, so a commit waits for them too.
* ``ready_batches(stream, max_size)``: a stream's records in batches of what is already
  fetched; ``current_event(event)`` makes a record of a batch faust's current event again,
  which a table write needs.

``use_feedline_transport(app, backoff)`` installs the transport on an app (faust's public
``transport``/``producer_transport`` setters), before its consumer or producer exist;
``backoff`` paces the bootstrap retries.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

import aiokafka
import faust
from faust import streams as faust_streams
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.backoff import Backoff
from streams.deliveries import DeliveryTracker
from streams.kafka_clients import patient_bootstrap


class Producer(faust_aiokafka.Producer):
    """faust's aiokafka producer, always idempotent with ``acks=all``."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    def _new_producer(self, transactional_id: str | None = None) -> aiokafka.AIOKafkaProducer:
        producer = super()._new_producer(transactional_id)
        patient_bootstrap(producer.client, _backoff(self.transport), "faust producer")
        return producer


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread, whose aiokafka consumer bootstraps patiently."""

    def _create_consumer(self, loop: asyncio.AbstractEventLoop) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_consumer(loop)
        patient_bootstrap(consumer._client, _backoff(self.transport), "faust consumer")
        return consumer


class ChangelogReadOffsets(MutableMapping[TP, int | None]):
    """faust's ``Consumer._read_offset`` (last offset delivered, per partition; None: none),
    remembered only for partitions ``tracked`` accepts; the others always read None, which
    makes faust deliver every record it fetches for them."""

    def __init__(self, tracked: Callable[[TP], bool]) -> None:
        self._tracked = tracked
        self._offsets: dict[TP, int | None] = {}

    def __getitem__(self, tp: TP) -> int | None:
        return self._offsets.get(tp) if self._tracked(tp) else None

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        if self._tracked(tp):
            self._offsets[tp] = offset

    def __delitem__(self, tp: TP) -> None:
        self._offsets.pop(tp, None)

    def __iter__(self) -> Iterator[TP]:
        return iter(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets)


class Consumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with explicit commits and seeks, and read offsets for
    changelogs only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = ChangelogReadOffsets(self._is_changelog_tp)

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_partition(self, tp: TP, offset: int) -> None:
        """Fetch ``tp`` from ``offset`` next (run on the consumer's thread and loop)."""
        consumer = self._thread._ensure_consumer()

        async def seek() -> None:
            consumer.seek(faust_aiokafka.ensure_aiokafka_TP(tp), offset)

        await self._thread.call_thread(seek)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition back to where the group resumes.

        faust calls this (through ``perform_seek()``) after it dropped fetched records: a
        ``getmany()`` that returns while a rebalance stopped the flow discards its batch and
        seeks back, and recovery seeks before resuming the streams. aiokafka's
        ``seek_to_committed()`` only seeks partitions whose committed offset is above 0, so a
        partition with nothing committed yet kept its fetch position past the dropped
        records: they came again only once a later record revealed the hole, and never when
        none followed (found by the short soak: a partition stalled with its lag never
        draining). Those partitions go back to their log start, where the group resumes
        them (``auto_offset_reset=earliest``); the ledger skips what it processed already.
        Changelog partitions are left alone: recovery positions them itself.
        """
        committed = await super().seek_to_committed()
        unseeked = [
            faust_aiokafka.ensure_aiokafka_TP(tp)
            for tp, offset in committed.items()
            if not offset and not self._is_changelog_tp(tp)
        ]
        if unseeked:
            consumer = self._thread._ensure_consumer()

            async def rewind() -> None:
                await consumer.seek_to_beginning(*unseeked)

            await self._thread.call_thread(rewind)
        return committed

    async def resume_offsets(self, tps: Sequence[TP]) -> dict[TP, int]:
        """Where the group resumes on each of ``tps``: its committed offset, or the log start
        when it never committed or the offset fell out of retention.

        Read by this consumer's own aiokafka client on its thread, which waits for the group
        coordinator across a broker restart. Not with librdkafka's admin API: its group
        requests can abort the whole process when one times out while the coordinator is
        away (``rd_kafka_enq_once_del_source_return: Assertion `eonce->refcnt > 0'``,
        librdkafka #4605 and #3663, both open); the default soak hit it once right after a
        broker restart.

        Raises:
            aiokafka.errors.KafkaError: the broker did not answer in time (callers retry).
        """
        consumer = self._thread._ensure_consumer()
        partitions = [faust_aiokafka.ensure_aiokafka_TP(tp) for tp in tps]

        async def read() -> dict[TP, int]:
            starts = await consumer.beginning_offsets(partitions)
            resume: dict[TP, int] = {}
            for tp in partitions:
                committed = await consumer.committed(tp)
                resume[TP(tp.topic, tp.partition)] = max(committed or 0, starts[tp])
            return resume

        result: dict[TP, int] = await self._thread.call_thread(read)
        return result

    async def end_offsets(self, tps: Sequence[TP]) -> dict[TP, int]:
        """The offset the next record of each of ``tps`` will get (its high watermark)."""
        consumer = self._thread._ensure_consumer()
        partitions = [faust_aiokafka.ensure_aiokafka_TP(tp) for tp in tps]

        async def read() -> dict[TP, int]:
            ends = await consumer.end_offsets(partitions)
            return {TP(tp.topic, tp.partition): offset for tp, offset in ends.items()}

        result: dict[TP, int] = await self._thread.call_thread(read)
        return result

    async def refetch(self, tp: TP, offset: int) -> None:
        """Fetch ``tp`` from ``offset`` next, and fetch it at all again if faust's flow
        control had taken it out of its fetch set (``on_buffer_full`` without the matching
        ``on_buffer_drop``); a partition faust paused (recovery) stays paused."""
        await self.seek_partition(tp, offset)
        self._buffered_partitions.discard(tp)
        if tp not in self._paused_partitions and tp in self.assignment():
            self._get_active_partitions().add(tp)

    async def commit_offsets(self, offsets: Mapping[TP, int]) -> bool:
        """Commit ``offsets`` (next offset to read, per partition) for partitions still
        assigned; False when the group rebalanced meanwhile (nothing was committed)."""
        if not offsets:
            return True
        return await self._commit(offsets)


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with feedline's producer and consumer."""

    Consumer = Consumer
    Producer = Producer
    backoff: Backoff = Backoff()
    """Pace of the clients' bootstrap retries."""


def use_event_loop(name: Literal["uvloop", "asyncio"]) -> None:
    """Run the faust app built next on ``name``'s event loop: call before anything creates a
    loop. ``uvloop`` is mode's ``mode.loop.use("uvloop")``, the way faust documents (the
    asyncio policy, so the consumer thread's own loop is uvloop too)."""
    if name == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")


def use_feedline_transport(app: faust.App, backoff: Backoff | None = None) -> None:
    """Make ``app`` build its consumer and producer from ``Transport``; ``backoff`` paces
    their bootstrap retries (default: ``Backoff()``)."""
    consumer_transport = Transport(app.conf.broker_consumer, app)
    producer_transport = Transport(app.conf.broker_producer, app)
    consumer_transport.backoff = producer_transport.backoff = backoff or Backoff()
    app.transport = consumer_transport
    app.producer_transport = producer_transport


def _backoff(transport: object) -> Backoff:
    return cast(Transport, transport).backoff


class TrackedTable(faust.Table):
    """A table whose changelog sends are tracked (``deliveries=`` when declaring it)."""

    def __init__(self, *args: Any, deliveries: DeliveryTracker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deliveries = deliveries

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        """Send a changelog record and track its delivery."""
        future = super().send_changelog(*args, **kwargs)
        self.deliveries.track(future)
        return future


@contextmanager
def current_event(event: faust.types.EventT) -> Iterator[None]:
    """Make ``event`` faust's current event while the block runs, as faust's stream does for
    each record it yields (``Stream._c_aiter`` sets the ``faust.streams._current_event``
    context variable). A table takes a written key's partition from the current event (its
    changelog partition and, on RocksDB, its database), and by the time a batch of
    ``ready_batches`` is handled faust's current event is its last record; faust has no
    public setter, hence the private name.
    """
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


async def ready_batches(
    stream: faust.StreamT[Any], max_size: int, linger_s: float = 0.0
) -> AsyncIterator[list[faust.types.EventT]]:
    """The stream's events in batches of whatever is already fetched, up to ``max_size``.

    A batch ends when it is full or when the stream's channel has nothing more queued, so it
    never waits for records that have not arrived: under a backlog batches fill up, when idle
    each record is a batch of one and is handled at once. (faust's ``Stream.take_events``
    instead waits its ``within`` for every batch that is not full: at 10 ms, the member side
    took batches of ~40 and spent two thirds of its time waiting.) With ``linger_s``, a batch
    that is not full waits that long once for more records (faust's fetcher hands records to
    the agent's queue one at a time, so a batch taken at once is often short).
    """
    channel = stream.channel
    queue = channel.queue if isinstance(channel, faust.types.ChannelT) else None
    batch: list[faust.types.EventT] = []
    lingered = False
    async for event in stream.events():
        batch.append(event)
        if len(batch) < max_size and queue is not None and not queue.empty():
            continue
        if len(batch) < max_size and queue is not None and linger_s and not lingered:
            lingered = True
            await asyncio.sleep(linger_s)
            if not queue.empty():
                continue
        yield batch
        batch, lingered = [], False
