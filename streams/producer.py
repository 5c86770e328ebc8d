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
from types import TracebackType

from confluent_kafka import KafkaError, Message

from schemas import Engagement, MemberProfile, PostCreated, PostDeleted, encode
from streams.errors import ProduceError
from streams.kafka_clients import confluent_producer
from streams.settings import KafkaSettings
from streams.topics import ENGAGEMENTS, MEMBERS_PROFILE, POSTS_CREATED, POSTS_DELETED, TopicSpec

log = logging.getLogger(__name__)

ProducerEvent = PostCreated | PostDeleted | Engagement | MemberProfile

ROUTES: dict[type[ProducerEvent], tuple[TopicSpec, str]] = {
    PostCreated: (POSTS_CREATED, "post_id"),
    PostDeleted: (POSTS_DELETED, "post_id"),
    Engagement: (ENGAGEMENTS, "post_id"),
    MemberProfile: (MEMBERS_PROFILE, "member_id"),
}
"""Event type → (topic, field used as the Kafka key)."""


class EventProducer:
    """A thin, safe wrapper over a confluent-kafka ``Producer``."""

    def __init__(self, kafka: KafkaSettings, *, linger_ms: int = 5) -> None:
        self.kafka = kafka
        self._producer = confluent_producer(kafka, **{"linger.ms": linger_ms})
        self._failures: list[str] = []
        self.delivered = 0

    def publish(self, event: ProducerEvent) -> None:
        """Queue one event for its topic; delivery is confirmed by ``flush()``."""
        spec, key_field = ROUTES[type(event)]
        key = str(getattr(event, key_field)).encode()
        self.publish_raw(self.kafka.topic(spec.name), key, encode(event))

    def publish_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue raw bytes, unvalidated: for tools and tests, not for event producers."""
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=list(headers or []),
                    on_delivery=self._on_delivery,
                )
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
        if error is None:
            self.delivered += 1
        else:
            self._failures.append(f"{message.topic()}: {error.str()}")
