"""``/v1/admin/rollout`` and its controller, up to the point where Kafka is needed: input
checks, one rollout at a time, model load failures shown in the status. The rollout itself
runs against a real broker in ``tests/integration/test_rollout.py``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from index_store import IndexSettings, IndexStore
from models.errors import ModelLoadError
from models.settings import EncoderSettings
from processors.engagement_history import MemberHistories
from service import rollout_controller
from service.app import build_api
from service.feeds.history_feed import HistoryFeed
from service.feeds.index_feed import IndexFeed
from service.metrics import ServiceMetrics
from service.ranker import Ranker
from service.ranker_settings import RankerSettings
from service.rollout_controller import RolloutController
from service.serving import ServingModel, ServingSlot
from service.settings import ServiceSettings
from service.state import ServiceState
from streams.settings import KafkaSettings
from tests.unit.service.fake_encoder import FakeEncoder

URL = "/v1/admin/rollout"


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics(CollectorRegistry())


@pytest.fixture
async def client(metrics: ServiceMetrics) -> AsyncIterator[httpx.AsyncClient]:
    kafka, histories = KafkaSettings(), MemberHistories(max_steps=10)
    store = IndexStore(8, "model-a")
    ranker = Ranker.load(RankerSettings(), store, histories)
    slot = ServingSlot(ServingModel(store, FakeEncoder("model-a", 8), ranker))
    feed = IndexFeed(kafka, IndexSettings(), metrics, dim=8, model_version="model-a")
    history_feed = HistoryFeed(kafka, histories)
    feed.ready.set()
    history_feed.ready.set()
    controller = RolloutController(
        kafka, EncoderSettings(), IndexSettings(), feed, slot, histories, metrics
    )
    app = build_api()
    app.state.service = ServiceState(
        ServiceSettings(), slot, feed, history_feed, metrics, (), rollouts=controller
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await controller.stop()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


async def wait_for_state(client: httpx.AsyncClient, state: str) -> dict[str, object]:
    for _ in range(200):
        body: dict[str, object] = (await client.get(URL)).json()
        if body["state"] == state:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"rollout never reached {state}: {body}")


async def test_status_is_idle_before_any_rollout(client: httpx.AsyncClient) -> None:
    body = (await client.get(URL)).json()
    assert body["state"] == "idle" and body["serving_model_version"] == "model-a"
    assert body["ranker_note"] == "no GR checkpoint configured"


async def test_a_path_that_is_no_model_directory_is_refused(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    response = await client.post(URL, json={"model_path": str(tmp_path / "absent")})
    assert response.status_code == 422 and response.json()["error_type"] == "validation"
    assert "no config.json" in response.json()["error"]
    (tmp_path / "config.json").write_text("{}")
    bad_ranker = {"model_path": str(tmp_path), "ranker_checkpoint": str(tmp_path / "gr")}
    assert (await client.post(URL, json=bad_ranker)).status_code == 422
    assert (await client.post(URL, json={"model": str(tmp_path)})).status_code == 422
    assert (await client.get(URL)).json()["state"] == "idle"


async def test_one_rollout_at_a_time_and_a_load_failure_is_reported(
    client: httpx.AsyncClient,
    model_dir: Path,
    metrics: ServiceMetrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def slow_broken_load(settings: EncoderSettings) -> FakeEncoder:
        release.wait(10)
        raise ModelLoadError(f"{settings.model_path}: weights are truncated")

    monkeypatch.setattr(rollout_controller.TextEncoder, "load", slow_broken_load)
    try:
        started = await client.post(URL, json={"model_path": str(model_dir)})
        assert started.status_code == 202, started.text
        assert started.json()["state"] == "loading"
        assert started.json()["model_path"] == str(model_dir)
        again = await client.post(URL, json={"model_path": str(model_dir)})
        assert again.status_code == 409 and again.json()["error_type"] == "conflict"
    finally:
        release.set()
    failed = await wait_for_state(client, "failed")
    assert "weights are truncated" in str(failed["error"])
    assert failed["serving_model_version"] == "model-a"
    outcome = metrics.registry.get_sample_value("feedline_rollouts_total", {"outcome": "failed"})
    assert outcome == 1.0


async def test_rolling_out_the_model_already_served_fails(
    client: httpx.AsyncClient, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollout_controller.TextEncoder, "load", lambda _: FakeEncoder("model-a", 8))
    assert (await client.post(URL, json={"model_path": str(model_dir)})).status_code == 202
    failed = await wait_for_state(client, "failed")
    assert "already serves model-a" in str(failed["error"])
