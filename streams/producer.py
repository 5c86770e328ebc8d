"""The producer client event producers use: validated events, idempotent, ``acks=all``.

Keys are derived from the event (``post_id`` or ``member_id``) so a record always lands on the
partition that owns its entity. Partitioning is murmur2, the Java client's and aiokafka's
default, so topics written here and by the pipeline's own producers stay co-partitioned.

Example::

    with EventProducer(KafkaSettings()) as producer:
        producer.publish(PostCreated(schema_version=1, post_id="p1", ...))
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from operator import attrgetter
from types import TracebackType

from confluent_kafka import KafkaError, Message

from schemas import Engagement, MemberProfile, PostCreated, PostDeleted
from streams.errors import ProduceError
from streams.kafka_clients import confluent_producer
from streams.settings import KafkaSettings
from streams.topics import ENGAGEMENTS, MEMBERS_PROFILE, POSTS_CREATED, POSTS_DELETED, TopicSpec

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]
"""Record headers as confluent-kafka takes them."""
ProducerEvent = PostCreated | PostDeleted | Engagement | MemberProfile

ROUTES: dict[type[ProducerEvent], tuple[TopicSpec, str]] = {
    PostCreated: (POSTS_CREATED, "post_id"),
    PostDeleted: (POSTS_DELETED, "post_id"),
    Engagement: (ENGAGEMENTS, "post_id"),
    MemberProfile: (MEMBERS_PROFILE, "member_id"),
}
"""Event type → (topic, field used as the Kafka key)."""


class EventProducer:
    """A thin, safe wrapper over a confluent-kafka ``Producer``.

    Cheap per record (``bench/producer.py`` measures it against a bare ``Producer``): the
    topic and key accessor of each event type are resolved once, the JSON comes from
    pydantic's serializer as bytes, and librdkafka reports only failed deliveries
    (``delivery.report.only.error``), so a successful record never calls back into Python.
    """

    def __init__(
        self, kafka: KafkaSettings, *, linger_ms: int = 5, delivery_timeout_ms: int = 300_000
    ) -> None:
        """``delivery_timeout_ms``: how long a record may wait for its acknowledgement
        (retries included) before it counts as failed; librdkafka's default."""
        self.kafka = kafka
        self._failures: list[str] = []
        self._produced = 0
        self._failed = 0
        self._producer = confluent_producer(
            kafka,
            **{
                "linger.ms": linger_ms,
                "delivery.timeout.ms": delivery_timeout_ms,
                "delivery.report.only.error": True,
                "on_delivery": self._on_delivery,
            },
        )
        self._routes = {
            event_type: (kafka.topic(spec.name), attrgetter(key_field))
            for event_type, (spec, key_field) in ROUTES.items()
        }

    @property
    def delivered(self) -> int:
        """Records acknowledged so far: queued, minus failed, minus still in flight."""
        return self._produced - self._failed - len(self._producer)

    def publish(self, event: ProducerEvent) -> None:
        """Queue one event for its topic; delivery is confirmed by ``flush()``."""
        topic, key_of = self._route(event)
        value = event.__pydantic_serializer__.to_json(event)  # schemas.encode, inlined
        key = key_of(event).encode()
        try:
            self._producer.produce(topic, value, key)
        except BufferError:
            self._produce_when_room(topic, key, value, None)
        self._produced += 1

    def publish_many(self, events: Iterable[ProducerEvent]) -> int:
        """Queue every event (a bulk load); returns how many. Confirm with ``flush()``.

        ``publish`` in one loop with its lookups hoisted; an event of the wrong type raises
        ``TypeError`` with every event before it queued (and counted)."""
        produce, routes, count = self._producer.produce, self._routes, 0
        try:
            for event in events:
                route = routes.get(type(event))
                topic, key_of = route if route is not None else self._route(event)
                value = event.__pydantic_serializer__.to_json(event)
                key = key_of(event).encode()
                try:
                    produce(topic, value, key)
                except BufferError:
                    self._produce_when_room(topic, key, value, None)
                count += 1
        finally:
            self._produced += count
        return count

    def _route(self, event: ProducerEvent) -> tuple[str, attrgetter[str]]:
        try:
            return self._routes[type(event)]
        except KeyError:
            raise TypeError(
                f"{type(event).__name__} is not a producer event; one of "
                + ", ".join(t.__name__ for t in ROUTES)
            ) from None

    def publish_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue raw bytes, unvalidated: for tools and tests, not for event producers."""
        wire: Headers | None = list(headers) if headers else None
        self._produce_when_room(topic, key, value, wire)
        self._produced += 1

    def _produce_when_room(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
    ) -> None:
        while True:
            try:
                if headers:
                    self._producer.produce(topic, value, key, headers=headers)
                else:
                    self._producer.produce(topic, value, key)
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued record is acknowledged by all in-sync replicas.

        Raises:
            ProduceError: some records were not delivered (the reasons are listed).
        """
        remaining = self._producer.flush(timeout_s)
        if remaining:
            self._failures.append(f"{remaining} records still queued after {timeout_s:.0f}s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise ProduceError(f"{len(failures)} delivery failures: " + "; ".join(failures[:5]))

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()
        else:
            self._producer.flush(5.0)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:  # only failures are reported (delivery.report.only.error)
            self._failed += 1
            self._failures.append(f"{message.topic()}: {error.str()}")
