"""``streams.faust_transport``: the idempotent producer, the consumer's read offsets kept for
changelogs only, changelog writes handed to the delivery tracker, and bootstraps that wait
for the broker."""

from __future__ import annotations

import asyncio
import logging

import faust
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError
from faust.types import TP

from streams.faust_transport import (
    ChangelogReadOffsets,
    Consumer,
    Producer,
    use_event_loop,
    use_feedline_transport,
)
from streams.kafka_clients import aiokafka_consumer, aiokafka_producer
from streams.settings import KafkaSettings

CHANGELOG = TP("app-posts-changelog", 0)
INPUT = TP("posts.created", 0)


def test_read_offsets_are_remembered_for_changelogs_only() -> None:
    offsets = ChangelogReadOffsets(lambda tp: tp.topic.endswith("-changelog"))
    offsets[CHANGELOG] = 7
    offsets[INPUT] = 9
    offsets.update({INPUT: 11})
    assert (offsets[CHANGELOG], offsets[INPUT]) == (7, None)
    assert offsets[TP("app-posts-changelog", 1)] is None  # missing reads None, like faust's
    assert offsets.pop(INPUT, None) is None
    del offsets[CHANGELOG]
    assert len(offsets) == 0 and list(offsets) == []


def test_the_app_builds_feedline_clients_with_idempotence() -> None:
    app = faust.App("transport-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    use_feedline_transport(app)
    assert isinstance(app.producer, Producer)
    assert app.producer._settings_extra() == {"acks": "all", "enable_idempotence": True}
    assert app.transport.Consumer is Consumer


async def test_every_aiokafka_client_bootstraps_patiently(caplog: pytest.LogCaptureFixture) -> None:
    """aiokafka's one-shot bootstrap raises at once with no broker; feedline's clients (the
    factories' and faust's) keep retrying it, logged, until cancelled."""
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1", retry_backoff_initial_s=0.05,
                          retry_backoff_max_s=0.05)  # fmt: skip
    app = faust.App("bootstrap-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    use_feedline_transport(app, kafka.backoff())
    loop = asyncio.get_running_loop()
    owners = {
        "factory producer": aiokafka_producer(kafka),
        "factory consumer": aiokafka_consumer(kafka, "t"),
        "faust producer": app.producer._new_producer(),
        "faust consumer": app.consumer._thread._create_consumer(loop),
    }
    plain = AIOKafkaClient(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(KafkaConnectionError):  # what aiokafka alone does
        await plain.bootstrap()
    await plain.close()
    with caplog.at_level(logging.WARNING, "streams.backoff"):
        for name, owner in owners.items():
            client = owner.client if isinstance(owner, AIOKafkaProducer) else owner._client
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.bootstrap(), timeout=1.0)
            retries = [r for r in caplog.records if "bootstrap failed" in r.getMessage()]
            assert len(retries) >= 3, name
            caplog.clear()
            await owner.stop()
    app.consumer._thread.thread_loop.close()  # the consumer thread's own loop, never run


def test_the_worker_event_loop_is_uvloop_or_asyncio_own() -> None:
    import uvloop

    before = asyncio.get_event_loop_policy()
    try:
        use_event_loop("asyncio")
        assert asyncio.get_event_loop_policy() is before
        use_event_loop("uvloop")
        assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, uvloop.Loop)
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(before)


@pytest.mark.parametrize(("name", "value"), [("EVENT_LOOP", "gevent"), ("PRODUCER_LINGER_S", "-1")])
def test_bad_worker_loop_or_linger_settings_are_refused(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from streams.prompt_settings import PromptWorkerSettings

    monkeypatch.setenv(f"FEEDLINE_PROMPTS_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        PromptWorkerSettings()
