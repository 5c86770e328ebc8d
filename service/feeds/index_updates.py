"""Records of the embedding topics applied to an ``IndexStore``: decode, re-embed what another
model wrote, apply in one batch, count, and say which records failed.

Blocking (FAISS and the encoder): the index feed calls ``apply`` in a thread, between polls,
and dead-letters the failures it returns. An update of another model version that carries its
prompt ``text`` is re-embedded by ``reembed`` before it applies, so embedding workers still
running the old model keep the index fresh; without ``reembed`` or text the store rejects it
(``InvalidUpdate``) and it is dead-lettered.

Example::

    updates = IndexUpdates(store, entities, kafka, metrics, reembed=encoder.encode)
    failures = updates.apply(records, live=True)   # [(record, error)], in offset order
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from index_store import IndexStore, InvalidUpdate, StoreUpdate
from schemas import EmbeddingUpdate, Entity, InvalidRecord, decode
from service.feeds.feed_metrics import IndexMetrics
from streams.dlq import failure_reason
from streams.records import Incoming
from streams.settings import KafkaSettings

Reembed = Callable[[list[str]], np.ndarray]
"""Prompt texts to ``(N, dim)`` vectors of the store's model (blocking; runs in a thread)."""

Failure = tuple[Incoming, Exception]


class IndexUpdates:
    """Applies embedding-topic records to one store (a switch makes a new ``IndexUpdates``)."""

    def __init__(
        self,
        store: IndexStore,
        entities: Mapping[str, Entity],
        kafka: KafkaSettings,
        metrics: IndexMetrics,
        *,
        reembed: Reembed | None = None,
    ) -> None:
        self.store = store
        self.entities = entities
        """Cluster topic name → the entity its records update."""
        self.kafka = kafka
        self.metrics = metrics
        self.reembed = reembed

    def apply(self, records: Sequence[Incoming], *, live: bool) -> list[Failure]:
        """Apply ``records`` (one topic's, in offset order) and return those that could not
        be, each with its error, in offset order; ``live`` as in ``IndexStore.apply_batch``."""
        failures: list[Failure] = []
        decoded: list[tuple[Incoming, StoreUpdate]] = []
        for record in records:
            try:
                decoded.append((record, self._decode(record)))
            except InvalidRecord as invalid:
                failures.append((record, invalid))
        decoded = self._reembed_foreign(decoded)
        results = self.store.apply_batch([update for _, update in decoded], live=live)
        for (record, _), result in zip(decoded, results, strict=True):
            if isinstance(result, InvalidUpdate):
                failures.append((record, result))
        self._count(records, failures)
        return sorted(failures, key=lambda failure: failure[0].offset)

    def _count(self, records: Sequence[Incoming], failures: list[Failure]) -> None:
        for record, failure in failures:
            name = self.kafka.catalog_name(record.topic)
            self.metrics.events.labels(name, "dead_lettered").inc()
            self.metrics.dead_letters.labels(name, failure_reason(failure)).inc()
        processed = len(records) - len(failures)
        if records and processed:
            name = self.kafka.catalog_name(records[0].topic)
            self.metrics.events.labels(name, "processed").inc(processed)

    def _reembed_foreign(
        self, decoded: list[tuple[Incoming, StoreUpdate]]
    ) -> list[tuple[Incoming, StoreUpdate]]:
        """Updates of another model version that carry their prompt, re-embedded with
        ``reembed``."""
        store = self.store
        foreign = [
            (n, update)
            for n, (_, (_, _, update)) in enumerate(decoded)
            if update is not None
            and update.model_version != store.model_version
            and update.text is not None
        ]
        if self.reembed is None or not foreign:
            return decoded
        vectors = self.reembed([update.text or "" for _, update in foreign])  # (N, dim)
        now_ms = int(time.time() * 1000)
        out = list(decoded)
        for row, (n, update) in enumerate(foreign):
            record, stored = decoded[n]
            fresh = update.with_vector(vectors[row], store.model_version, now_ms)
            out[n] = (record, stored._replace(update=fresh))
            self.metrics.reembedded.labels(stored.entity).inc()
        return out

    def _decode(self, record: Incoming) -> StoreUpdate:
        entity = self.entities[record.topic]
        entity_id = (record.key or b"").decode("utf-8", errors="replace")
        update = None if record.value is None else decode(EmbeddingUpdate, record.value)
        return StoreUpdate(entity, entity_id, update)
