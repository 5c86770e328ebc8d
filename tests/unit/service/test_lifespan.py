"""The query service's lifespan stops everything it started, whichever start-up step fails.

The feeds are stand-ins that record what was called on them (a real one needs the broker; the
integration tests run the real lifespan): what is under test is the order of starts and
stops in ``service.app.create_app``, including failures a broker cannot be made to produce
on demand."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

import service.app as app_module
from index_store import IndexSettings, IndexStore
from models.settings import EncoderSettings
from service.ranker_settings import RankerSettings
from service.settings import ServiceSettings
from streams.settings import KafkaSettings

DIM = 8


class Boom(RuntimeError):
    """The failure a test injects."""


class Calls(list[str]):
    """What the stand-ins were asked to do, in order."""


class FakeEncoder:
    dim, model_version = DIM, "fake@1"

    @classmethod
    def load(cls, settings: EncoderSettings) -> FakeEncoder:
        return cls()

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), DIM), dtype=np.float32)


def fake_feeds(calls: Calls, fail: str | None) -> tuple[type, type]:
    class IndexFeed:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.store = IndexStore(DIM, FakeEncoder.model_version)

        async def start(self) -> None:
            calls.append("index.start")
            if fail == "index.start":
                raise Boom(fail)

        async def run(self) -> None:
            await asyncio.Event().wait()

        async def stop(self, *, snapshot: bool = True) -> None:
            calls.append(f"index.stop(snapshot={snapshot})")

    class HistoryFeed:
        def __init__(self, *args: Any) -> None:
            pass

        async def start(self) -> None:
            calls.append("history.start")
            if fail == "history.start":
                raise Boom(fail)

        async def run(self) -> None:
            try:
                await asyncio.Event().wait()
            finally:
                calls.append("history.run ended")

        async def stop(self) -> None:
            calls.append("history.stop")

    return IndexFeed, HistoryFeed


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    monkeypatch.setattr(app_module, "when_broker_answers", lambda *args: None)
    monkeypatch.setattr(app_module, "TextEncoder", FakeEncoder)
    return Calls()


def lifespan_of(calls: Calls, monkeypatch: pytest.MonkeyPatch, fail: str | None) -> Any:
    index_feed, history_feed = fake_feeds(calls, fail)
    monkeypatch.setattr(app_module, "IndexFeed", index_feed)
    monkeypatch.setattr(app_module, "HistoryFeed", history_feed)
    if fail == "ranker.load":

        def broken(*args: Any) -> None:
            raise Boom(fail)

        monkeypatch.setattr(app_module.Ranker, "load", broken)
    app = app_module.create_app(
        KafkaSettings(),
        ServiceSettings(),
        EncoderSettings(),
        IndexSettings(),
        RankerSettings(),
    )
    return app, app.router.lifespan_context(app)


@pytest.mark.parametrize(
    ("fail", "expected"),
    [
        ("index.start", ["index.start", "index.stop(snapshot=False)"]),
        (
            "history.start",
            ["index.start", "history.start", "history.stop", "index.stop(snapshot=False)"],
        ),
        (
            "ranker.load",
            ["index.start", "history.start", "history.stop", "index.stop(snapshot=False)"],
        ),
    ],
)
async def test_a_failed_start_stops_what_was_started(
    fail: str, expected: list[str], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, lifespan = lifespan_of(calls, monkeypatch, fail)
    with pytest.raises(Boom, match=fail):
        async with lifespan:
            pass
    assert calls == expected


async def test_shutdown_stops_the_tasks_then_the_feeds_with_a_final_snapshot(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, lifespan = lifespan_of(calls, monkeypatch, None)
    async with lifespan:
        state = app.state.service
        await asyncio.sleep(0.01)  # the feeds' run tasks start
        assert all(not task.done() for task in state.tasks)
    assert all(task.cancelled() for task in state.tasks)
    assert calls == [
        "index.start",
        "history.start",
        "history.run ended",
        "history.stop",
        "index.stop(snapshot=True)",
    ]
