"""What the embedding worker does with one poll of prompt requests, free of Kafka.

Decode (bad records become dead letters), keep only the newest request per entity (an older
version in the same poll would be overwritten downstream anyway), embed the upserts in one
call, and emit one record per surviving request: an ``EmbeddingUpdate`` keyed by entity id,
or a tombstone (``value=None``) for a delete, which is how compacted
``embeddings.*`` topics forget an entity. Each update carries the prompt ``text`` it was
computed from, so the compacted topics hold what a model rollout re-embeds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

import numpy as np

from processors.batching import latest_per_entity
from processors.index_updates import embedding_update
from schemas import InvalidRecord, PromptRequest, decode, encode
from streams.dlq import dead_letter, failure_reason
from streams.metrics import EmbedMetrics
from streams.prompt_handlers import wall_clock_ms
from streams.records import Incoming, Outgoing
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_MEMBERS, EMBEDDINGS_POSTS

Embed = Callable[[list[str]], Awaitable[np.ndarray]]
Source = tuple[str, int]
"""``(topic, partition)`` of the consumed records an output belongs to."""


class _Decoded(NamedTuple):
    source: Source
    request: PromptRequest


class EmbedHandlers:
    """Turns a poll of prompt requests into embedding updates, tombstones and dead letters."""

    def __init__(
        self,
        kafka: KafkaSettings,
        metrics: EmbedMetrics,
        model_version: str,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.kafka = kafka
        self.metrics = metrics
        self.model_version = model_version
        self.clock = clock

    async def handle(self, records: Sequence[Incoming], embed: Embed) -> list[Outgoing]:
        """All records to produce for ``records``; ``embed`` maps texts to ``(N, D)`` rows."""
        by_source = await self.handle_by_partition(records, embed)
        return [out for outputs in by_source.values() for out in outputs]

    async def handle_by_partition(
        self, records: Sequence[Incoming], embed: Embed
    ) -> dict[Source, list[Outgoing]]:
        """The records to produce for ``records``, by the partition they were consumed from
        (every partition of ``records`` is a key, with ``[]`` when it produces nothing), so
        each partition's outputs commit with its offset. One ``embed`` call for them all."""
        out: dict[Source, list[Outgoing]] = {(r.topic, r.partition): [] for r in records}
        decoded: list[_Decoded] = []
        for record in records:
            name = self.kafka.catalog_name(record.topic)
            try:
                request = decode(PromptRequest, record.value)
            except InvalidRecord as error:
                self.metrics.events.labels(name, "dead_lettered").inc()
                self.metrics.dead_letters.labels(name, failure_reason(error)).inc()
                out[(record.topic, record.partition)].append(dead_letter(record, error))
                continue
            decoded.append(_Decoded((record.topic, record.partition), request))
            self.metrics.events.labels(name, "processed").inc()
        latest = latest_per_entity(decoded, key=lambda d: (d.request.entity, d.request.entity_id))
        kept = {id(d) for d in latest}
        for item in decoded:
            if id(item) not in kept:
                self.metrics.superseded.labels(item.request.entity).inc()
        for item, update in zip(latest, await self._updates(latest, embed), strict=True):
            out[item.source].append(update)
        return out

    async def _updates(self, items: list[_Decoded], embed: Embed) -> list[Outgoing]:
        requests = [item.request for item in items]
        upserts = [r for r in requests if r.op == "upsert"]
        vectors = await embed([r.text for r in upserts]) if upserts else np.zeros((0, 0))
        now = self.clock()
        by_request = {id(r): vectors[i] for i, r in enumerate(upserts)}
        out = []
        for request in requests:
            topic = self._topic(request)
            key = request.entity_id.encode()
            self.metrics.updates.labels(request.entity, request.op).inc()
            if request.op == "delete":
                out.append(Outgoing(topic, key, None))
                continue
            update = embedding_update(request, by_request[id(request)], self.model_version, now)
            # the prompt travels with the vector: a model rollout re-embeds from it
            update = update.model_copy(update={"text": request.text})
            out.append(Outgoing(topic, key, encode(update)))
        return out

    def _topic(self, request: PromptRequest) -> str:
        spec = EMBEDDINGS_POSTS if request.entity == "post" else EMBEDDINGS_MEMBERS
        return self.kafka.topic(spec.name)
