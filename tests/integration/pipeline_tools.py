"""Publishing events to the running pipeline and waiting for their posts in the service."""

from __future__ import annotations

from service.client import QueryClient
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from tests.integration.kafka_tools import wait_until

VISIBLE_DEADLINE_S = 90
"""Seconds a published post may take to become visible on this machine under load."""


def publish(kafka: KafkaSettings, *events: object) -> None:
    """Publish ``events`` with feedline's producer and wait for every acknowledgement."""
    with EventProducer(kafka) as producer:
        for event in events:
            producer.publish(event)  # type: ignore[arg-type]


def wait_visible(client: QueryClient, *post_ids: str) -> None:
    """Wait until the service answers for every one of ``post_ids``."""
    wait_until(lambda: all(client.post(p) for p in post_ids), VISIBLE_DEADLINE_S, f"{post_ids}")
