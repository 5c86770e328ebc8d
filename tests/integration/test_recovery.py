"""Crashes lose nothing: SIGKILL the embedding worker and the service mid-stream, restart
them, and the index ends up with exactly the expected posts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from feedline.soak_workload import WORDS
from service.client import QueryClient
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from tests.integration.conftest import Pipeline
from tests.integration.events import delete, post
from tests.integration.kafka_tools import wait_until

pytestmark = pytest.mark.integration

FIRST_WAVE = 300
SECOND_WAVE = 100


def test_killing_embed_worker_and_service_mid_stream_loses_no_post(
    kafka_factory: Callable[..., KafkaSettings],
    pipeline_factory: Callable[[KafkaSettings], Pipeline],
) -> None:
    kafka = kafka_factory()
    pipeline = pipeline_factory(kafka)
    with QueryClient(pipeline.url) as client:
        wait_until(client.is_ready, 180, f"the service to be ready\n{pipeline.logs()}")
        _crash_and_recover(kafka, pipeline, client)


def _crash_and_recover(kafka: KafkaSettings, pipeline: Pipeline, client: QueryClient) -> None:
    first = [f"a{i:04d}" for i in range(FIRST_WAVE)]
    second = [f"b{i:04d}" for i in range(SECOND_WAVE)]
    deleted = first[:10] + second[:5]

    # long posts (~200 tokens) keep the embedding worker busy for seconds, so the kill lands
    # in the middle of the first wave
    _publish(kafka, [post(p, long_text(p, i)) for i, p in enumerate(first)])
    wait_until(lambda: client.stats().posts >= 20, 120, "some posts indexed")
    pipeline.roles["embed"].kill()
    at_kill = client.stats().posts
    pipeline.roles["serve"].kill()
    assert at_kill < FIRST_WAVE, "the embedding worker was not killed mid-stream"

    _publish(kafka, [post(p, f"Later post {p}") for p in second] + [delete(p) for p in deleted])
    pipeline.roles["embed"].start()
    pipeline.roles["serve"].start()
    wait_until(client.is_ready, 180, f"the restarted service\n{pipeline.logs()}")

    expected = set(first + second) - set(deleted)
    wait_until(lambda: client.stats().posts == len(expected), 180, "all posts after restart")
    missing = [p for p in sorted(expected) if client.post(p) is None]
    resurrected = [p for p in deleted if client.post(p) is not None]
    assert (missing, resurrected) == ([], [])
    assert client.stats().posts == len(expected)


def long_text(post_id: str, seed: int) -> str:
    return f"{post_id}: " + " ".join(WORDS[(seed * 7 + j * 3) % len(WORDS)] for j in range(160))


def _publish(kafka: KafkaSettings, events: list[object]) -> None:
    with EventProducer(kafka) as producer:
        for event in events:
            producer.publish(event)  # type: ignore[arg-type]
