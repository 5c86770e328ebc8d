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
        out: list[Outgoing] = []
        requests: list[PromptRequest] = []
        for record in records:
            name = self.kafka.catalog_name(record.topic)
            try:
                requests.append(decode(PromptRequest, record.value))
            except InvalidRecord as error:
                self.metrics.events.labels(name, "dead_lettered").inc()
                self.metrics.dead_letters.labels(name, failure_reason(error)).inc()
                out.append(dead_letter(record, error))
                continue
            self.metrics.events.labels(name, "processed").inc()
        latest = latest_per_entity(requests, key=lambda r: (r.entity, r.entity_id))
        kept = {id(r) for r in latest}
        for request in requests:
            if id(request) not in kept:
                self.metrics.superseded.labels(request.entity).inc()
        return out + await self._updates(latest, embed)

    async def _updates(self, requests: list[PromptRequest], embed: Embed) -> list[Outgoing]:
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
