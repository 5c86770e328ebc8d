"""Model rollout: re-embed every live post and member into a shadow index, then switch.

Vectors of two embedding models cannot share an index, and replaying all history through the
prompt and embedding pipelines takes as long as the history. The compacted ``embeddings.*``
topics already hold the newest record of every entity and (``EmbeddingUpdate.text``) the
prompt it was computed from: a rollout re-embeds those prompts with the new model into a
shadow ``IndexStore`` while the old index keeps serving, then hands the shadow to the caller,
which switches in one step (``IndexFeed.switch`` and the service's ``ServingSlot``).

Partition/offset behaviour: a ``TopicReader`` without a group (nothing is committed) assigns
every partition of both topics. ``building`` reads each partition from its beginning to the
end offset observed at the start, keeps the newest update per entity (a post tombstone wins
for good, as in the store) and re-embeds the survivors in batches. ``catching_up`` reads on
poll by poll, re-embedding what arrived meanwhile, until a fresh look at the end offsets finds
nothing new (at most ``catch_up_rounds`` times: under a write rate above the re-embedding
rate the live feed, which re-embeds too, takes over the rest). ``Shadow.positions`` are the
offsets the shadow covers: the live feed continues from exactly there after the switch.

Trade-off: an update written before ``text`` existed cannot be re-embedded. Its entity is
left out of the shadow (``skipped_no_text``, logged with partition/offset) until it changes
again, and the rollout still completes. If no update carries text at all the rollout fails:
the topics predate the field, so replay the prompts through embedding workers running the new
model instead. An update already embedded by the new model is used as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import numpy as np

from index_store import IndexSettings, IndexStore, InvalidUpdate, Outcome, StoreUpdate
from processors.newest_per_entity import NewestPerEntity
from schemas import EmbeddingUpdate, Entity, InvalidRecord, decode
from service.feeds.feed_metrics import ROLLOUT_STATES, RolloutMetrics
from service.feeds.topic_reader import Positions, TopicReader
from streams.errors import StreamsError
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_MEMBERS, EMBEDDINGS_POSTS

log = logging.getLogger(__name__)

RolloutState = Literal["building", "catching_up", "switched", "failed"]
ENTITIES: tuple[Entity, ...] = ("post", "member")
SKIPPED_LOGGED = 20
"""Updates without text logged one by one per rollout; the rest only in the summary line."""


class Reencoder(Protocol):
    """The new model: ``TextEncoder`` or anything with the same surface."""

    model_version: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 rows of unit length."""
        ...


class RolloutError(StreamsError):
    """A rollout cannot complete (e.g. no update carries the prompt text to re-embed)."""


class Shadow(NamedTuple):
    """A fully built index of the new model and the offsets it covers."""

    store: IndexStore
    positions: Positions
    """Next offset to read per partition: everything before it is in ``store``."""


Switch = Callable[[Shadow], Awaitable[None]]


@dataclass(frozen=True)
class RolloutStatus:
    """Where a rollout stands (what ``GET /v1/admin/rollout`` shows)."""

    state: RolloutState
    model_version: str
    """The model being rolled out."""
    target: dict[Entity, int]
    """Entities to embed with the new model (grows while catching up)."""
    embedded: dict[Entity, int]
    skipped_no_text: dict[Entity, int]
    deleted_posts: int
    """Post tombstones carried into the shadow (a late insert stays dropped)."""
    invalid: int
    """Records that could not be decoded or applied (the live feed dead-letters them)."""
    seconds: float
    error: str | None = None


@dataclass
class _Progress:
    target: dict[Entity, int] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0))
    embedded: dict[Entity, int] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0))
    skipped: dict[Entity, int] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0))
    deleted_posts: int = 0
    invalid: int = 0


class Rollout:
    """Builds a shadow index of ``encoder``'s model from the compacted topics.

    Example::

        rollout = Rollout(kafka, TextEncoder.load(EncoderSettings(model_path=new)), index, m)
        shadow = await rollout.run(switch)   # switch(shadow) makes it serve; then "switched"
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        encoder: Reencoder,
        settings: IndexSettings,
        metrics: RolloutMetrics,
        *,
        batch_size: int = 512,
        catch_up_rounds: int = 10,
    ) -> None:
        self.kafka = kafka
        self.encoder = encoder
        self.settings = settings
        self.metrics = metrics
        self.batch_size = batch_size
        self.catch_up_rounds = catch_up_rounds
        self._entities: dict[str, Entity] = {
            kafka.topic(EMBEDDINGS_POSTS.name): "post",
            kafka.topic(EMBEDDINGS_MEMBERS.name): "member",
        }
        self._state: RolloutState = "building"
        self._progress = _Progress()
        self._started = time.monotonic()
        self._ended: float | None = None
        self._error: str | None = None
        self._logged_skips = 0

    @property
    def model_version(self) -> str:
        """The model this rollout switches to."""
        return self.encoder.model_version

    def status(self) -> RolloutStatus:
        """A consistent copy of the progress so far."""
        p = self._progress
        return RolloutStatus(
            state=self._state,
            model_version=self.model_version,
            target=dict(p.target),
            embedded=dict(p.embedded),
            skipped_no_text=dict(p.skipped),
            deleted_posts=p.deleted_posts,
            invalid=p.invalid,
            seconds=self.seconds(),
            error=self._error,
        )

    def seconds(self) -> float:
        """Time since the start, up to the switch or failure."""
        return (self._ended or time.monotonic()) - self._started

    async def run(self, switch: Switch) -> Shadow:
        """Build, catch up, then ``await switch(shadow)``; returns the shadow once it serves.
        On any failure (or cancellation) the state becomes ``failed`` and the error is raised;
        the old index keeps serving."""
        self._started = time.monotonic()
        self._set_state("building")
        self.metrics.duration.set_function(self.seconds)
        try:
            shadow = await self._build_shadow()
            await switch(shadow)
        except BaseException as error:
            self._fail(error)
            raise
        self._ended = time.monotonic()
        self._set_state("switched")
        self.metrics.outcomes.labels("switched").inc()
        log.info("rollout to %s switched after %.1f s", self.model_version, self.seconds())
        return shadow

    async def _build_shadow(self) -> Shadow:
        store = IndexStore(self.encoder.dim, self.model_version, settings=self.settings)
        reader = TopicReader(
            self.kafka,
            self._entities,
            max_records=self.batch_size * 4,
            absent_hint="nothing to roll out",
        )
        async with reader:
            await self._build(reader, store)
            self._set_state("catching_up")
            await self._catch_up(reader, store)
        await asyncio.to_thread(store.maintain)
        log.info("rollout to %s built: %s", self.model_version, store.counts())
        return Shadow(store, dict(reader.positions))

    async def _build(self, reader: TopicReader, store: IndexStore) -> None:
        reducer = NewestPerEntity()
        async for records in self._read(reader, reader.targets, "building"):
            for record, where in records:
                reducer.add(record, where)
        tombstones = reducer.tombstones()
        survivors = self._embeddable(reducer.survivors())
        self._log_skipped()
        if not survivors and any(self._progress.skipped.values()):
            raise RolloutError(
                f"none of the {sum(self._progress.skipped.values())} live updates in the "
                "embeddings topics carries its prompt text (they were written before "
                "EmbeddingUpdate.text existed), so nothing can be re-embedded: replay the "
                "prompts through embedding workers running the new model instead"
            )
        await self._apply_tombstones(store, tombstones)
        for start in range(0, len(survivors), self.batch_size):
            await self._embed_and_apply(store, survivors[start : start + self.batch_size])

    async def _catch_up(self, reader: TopicReader, store: IndexStore) -> None:
        for round_ in range(self.catch_up_rounds + 1):
            ends = await reader.end_offsets()
            if reader.reached(ends):
                return
            if round_ == self.catch_up_rounds:
                break
            async for records in self._read(reader, ends, "catching_up"):
                reducer = NewestPerEntity()  # per poll: only the newest version is worth embedding
                for record, where in records:
                    reducer.add(record, where)
                await self._apply_tombstones(store, reducer.tombstones())
                await self._embed_and_apply(store, self._embeddable(reducer.survivors()))
        log.warning(
            "rollout to %s still behind after %d catch-up rounds (updates arrive faster than "
            "they are re-embedded): the live feed re-embeds the rest after the switch",
            self.model_version,
            self.catch_up_rounds,
        )

    async def _apply_tombstones(self, store: IndexStore, tombstones: list[StoreUpdate]) -> None:
        if tombstones:
            await asyncio.to_thread(store.apply_batch, tombstones, live=False)
            self._progress.deleted_posts += sum(1 for t in tombstones if t.entity == "post")

    async def _read(
        self, reader: TopicReader, ends: Positions, phase: str
    ) -> AsyncIterator[list[tuple[StoreUpdate, str]]]:
        """Poll batches of decoded records until the reader reached ``ends`` on every
        partition (records past ``ends`` that come along are kept: its positions say what was
        read); a batch counts as read once the caller took the next one."""
        while not reader.reached(ends):
            polled = await reader.read()
            batch: list[tuple[StoreUpdate, str]] = []
            for tp, messages in polled.items():
                for message in messages:
                    where = f'partition="{tp.topic}[{tp.partition}]" offset="{message.offset}"'
                    decoded = self._decode(tp.topic, message.key, message.value, where)
                    if decoded is not None:
                        batch.append((decoded, where))
                self.metrics.records.labels(phase).inc(len(messages))
            if batch:
                yield batch
            await reader.advance(polled)

    def _decode(
        self, topic: str, key: bytes | None, value: bytes | None, where: str
    ) -> StoreUpdate | None:
        entity_id = (key or b"").decode("utf-8", errors="replace")
        try:
            update = None if value is None else decode(EmbeddingUpdate, value)
        except InvalidRecord as error:
            self._progress.invalid += 1
            log.debug("rollout skips an invalid record at %s: %s", where, error)
            return None
        if update is not None and not self._is_new(update):
            # the old vector is never used: holding only the text keeps a million entities
            # in memory at the size of their prompts
            update = update.model_copy(update={"vector_b64": ""})
        return StoreUpdate(self._entities[topic], entity_id, update)

    def _embeddable(self, survivors: Iterable[tuple[StoreUpdate, str]]) -> list[StoreUpdate]:
        """Survivors that carry text or the new model's vector; the others are counted and
        logged as ``skipped_no_text``. Adds the kept ones to the target."""
        kept = []
        for record, where in survivors:
            assert record.update is not None
            if record.update.text is not None or self._is_new(record.update):
                kept.append(record)
                self._progress.target[record.entity] += 1
                continue
            self._progress.skipped[record.entity] += 1
            if self._logged_skips < SKIPPED_LOGGED:
                log.warning(
                    "rollout leaves %s %r out: its update at %s has no prompt text",
                    record.entity,
                    record.entity_id,
                    where,
                )
            self._logged_skips += 1
        self._publish()
        return kept

    def _is_new(self, update: EmbeddingUpdate) -> bool:
        return update.model_version == self.model_version and update.dim == self.encoder.dim

    async def _embed_and_apply(self, store: IndexStore, records: Sequence[StoreUpdate]) -> None:
        if not records:
            return
        results = await asyncio.to_thread(self._embed_and_apply_now, store, records)
        for record, result in zip(records, results, strict=True):
            if isinstance(result, InvalidUpdate):
                log.warning("rollout cannot apply %s %r: %s", *record[:2], result)
                self._progress.invalid += 1
                self._progress.target[record.entity] -= 1
            else:
                self._progress.embedded[record.entity] += 1
        self._publish()

    def _embed_and_apply_now(
        self, store: IndexStore, records: Sequence[StoreUpdate]
    ) -> list[Outcome | InvalidUpdate]:
        """Blocking: one encoder call for the batch, then one ``apply_batch``."""
        todo = [
            (n, r.update)
            for n, r in enumerate(records)
            if r.update is not None and not self._is_new(r.update)
        ]
        vectors = self.encoder.encode([update.text or "" for _, update in todo])  # (N, dim)
        now_ms = int(time.time() * 1000)
        updates = list(records)
        for row, (n, update) in enumerate(todo):
            vector = vectors[row]
            updates[n] = records[n]._replace(
                update=update.with_vector(vector, self.model_version, now_ms)
            )
        return store.apply_batch(updates, live=False)

    def _set_state(self, state: RolloutState) -> None:
        self._state = state
        for name in ROLLOUT_STATES:
            self.metrics.state.labels(self.model_version, name).set(1 if name == state else 0)
        if state == "building":
            self.metrics.entities.clear()
        self._publish()

    def _publish(self) -> None:
        p = self._progress
        for entity in ENTITIES:
            gauge = self.metrics.entities
            gauge.labels(entity, "target").set(p.target[entity])
            gauge.labels(entity, "embedded").set(p.embedded[entity])
            gauge.labels(entity, "skipped_no_text").set(p.skipped[entity])
        self.metrics.entities.labels("post", "deleted").set(p.deleted_posts)

    def _log_skipped(self) -> None:
        skipped = self._progress.skipped
        if any(skipped.values()):
            log.warning(
                "rollout to %s leaves %d posts and %d members out: their newest update has "
                "no prompt text (written before EmbeddingUpdate.text existed); they return "
                "when they change next",
                self.model_version,
                skipped["post"],
                skipped["member"],
            )

    def _fail(self, error: BaseException) -> None:
        self._ended = time.monotonic()
        message = "cancelled" if isinstance(error, asyncio.CancelledError) else str(error)
        self._error = message or type(error).__name__
        self._set_state("failed")
        self.metrics.outcomes.labels("failed").inc()
        expected = isinstance(error, (RolloutError, asyncio.CancelledError))
        log.error(
            "rollout to %s failed: %s", self.model_version, self._error, exc_info=not expected
        )
