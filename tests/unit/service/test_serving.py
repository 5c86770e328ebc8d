"""``service.serving``: a model swap is atomic for every request, over the real HTTP routes.

Two serving models whose answers tell them apart (model A: 8-dim vectors, posts ``a*``, a GR
trained on its embeddings; model B: 16-dim vectors, posts ``b*``, the same GR, which does
not fit B) are swapped back and forth while threads query by member, by text and for feeds.
A request that mixed the two would fail (an 8-dim query against the 16-dim index), return
the other model's posts, or rank B's vectors with A's GR.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from index_store import IndexSettings, IndexStore
from models.gr.checkpoint import save_checkpoint
from models.gr.config import GRConfig
from processors.engagement_history import MemberHistories
from service.app import build_api
from service.feeds.history_feed import HistoryFeed
from service.feeds.index_feed import IndexFeed
from service.metrics import ServiceMetrics
from service.ranker import Ranker
from service.ranker_settings import RankerSettings
from service.serving import ServingModel, ServingSlot
from service.settings import ServiceSettings
from service.state import ServiceState
from streams.settings import KafkaSettings
from tests.unit.models.gr.gr_fixtures import random_model
from tests.unit.service.fake_encoder import FakeEncoder, update

POSTS = 30
GR_CONFIG = GRConfig(embedding_dim=8, d_model=32, n_heads=4, dropout=0.0, max_history=20)


def serving_model(
    prefix: str, dim: int, histories: MemberHistories, checkpoint: Path
) -> ServingModel:
    version = f"model-{prefix}"
    store = IndexStore(dim, version, settings=IndexSettings(backend="flat"))
    for i in range(POSTS):
        store.apply("post", f"{prefix}{i}", update(f"{prefix}{i}", version, dim))
    store.apply("member", "m1", update("m1", version, dim))
    ranker = Ranker.load(RankerSettings(checkpoint=checkpoint), store, histories)
    return ServingModel(store, FakeEncoder(version, dim), ranker)


@pytest.fixture
def histories() -> MemberHistories:
    return MemberHistories(max_steps=100)


@pytest.fixture
def models(tmp_path: Path, histories: MemberHistories) -> tuple[ServingModel, ServingModel]:
    save_checkpoint(random_model(GR_CONFIG), tmp_path / "gr", embedding_model_version="model-a")
    first = serving_model("a", 8, histories, tmp_path / "gr")
    second = serving_model("b", 16, histories, tmp_path / "gr")
    assert first.ranker.checkpoint is not None and second.ranker.checkpoint is None
    return first, second


@pytest.fixture
def slot(models: tuple[ServingModel, ServingModel]) -> ServingSlot:
    return ServingSlot(models[0])


@pytest.fixture
async def client(slot: ServingSlot, histories: MemberHistories) -> AsyncIterator[httpx.AsyncClient]:
    """The real routes; sync handlers run in the thread pool, as in production."""
    kafka = KafkaSettings()
    metrics = ServiceMetrics(CollectorRegistry())
    feed = IndexFeed(kafka, IndexSettings(), metrics, dim=8, model_version="model-a")
    history_feed = HistoryFeed(kafka, histories)
    feed.ready.set()
    history_feed.ready.set()
    app = build_api()
    app.state.service = ServiceState(ServiceSettings(), slot, feed, history_feed, metrics, ())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def query(client: httpx.AsyncClient, n: int) -> tuple[int, str, list[str], str]:
    """(status, model_version, post ids, ranking) of the n-th query of a mixed workload."""
    kind = n % 3
    if kind == 0:
        response = await client.post("/v1/retrieve", json={"text": f"query {n}", "k": 5})
    elif kind == 1:
        response = await client.post("/v1/retrieve", json={"member_id": "m1", "k": 5})
    else:
        response = await client.get("/v1/members/m1/feed", params={"k": 5})
    body = response.json()
    if response.status_code != 200:
        return response.status_code, str(body), [], ""
    ids = [item["post_id"] for item in body["items"]]
    return 200, body["model_version"], ids, body.get("ranking", "")


async def test_a_swap_is_atomic_for_concurrent_requests(
    client: httpx.AsyncClient, slot: ServingSlot, models: tuple[ServingModel, ServingModel]
) -> None:
    stop = threading.Event()

    def swap_back_and_forth() -> None:
        while not stop.wait(0.001):  # a swap every millisecond, without hogging the GIL
            slot.swap(models[1] if slot.current is models[0] else models[0])

    swapper = threading.Thread(target=swap_back_and_forth)
    swapper.start()
    try:
        results = []
        for start in range(0, 300, 30):  # 30 requests in flight, in the route thread pool
            results += await asyncio.gather(*(query(client, n) for n in range(start, start + 30)))
    finally:
        stop.set()
        swapper.join()
    assert slot.swaps > 10
    assert [r for r in results if r[0] != 200] == []
    seen = set()
    for _, version, ids, ranking in results:
        prefix = version.removeprefix("model-")
        assert len(ids) == 5 and all(i.startswith(prefix) for i in ids), (version, ids)
        assert ranking in ("", "gr" if prefix == "a" else "retrieval"), (version, ranking)
        seen.add(version)
    assert seen == {"model-a", "model-b"}


async def test_after_a_swap_feeds_fall_back_to_retrieval_order_and_say_why(
    client: httpx.AsyncClient, slot: ServingSlot, models: tuple[ServingModel, ServingModel]
) -> None:
    before = (await client.get("/v1/members/m1/feed")).json()
    assert before["ranking"] == "gr" and before["model_version"] == "model-a"
    slot.swap(models[1])
    after = (await client.get("/v1/members/m1/feed")).json()
    assert after["ranking"] == "retrieval" and after["model_version"] == "model-b"
    assert "trained on embeddings of model-a" in after["ranking_note"]
    stats = (await client.get("/v1/stats")).json()
    assert stats["model_version"] == "model-b" and stats["posts"] == POSTS
    assert stats["ranker_version"] is None and "model-b" in stats["ranker_note"]
    rank = await client.post("/v1/rank", json={"member_id": "m1", "post_ids": ["b1"]})
    assert rank.status_code == 503 and rank.json()["error_type"] == "ranker_unavailable"


def test_a_serving_model_refuses_parts_of_different_models(
    models: tuple[ServingModel, ServingModel],
) -> None:
    first, second = models
    with pytest.raises(ValueError, match="embeds with 'model-b'"):
        ServingModel(first.store, second.encoder, first.ranker)
    with pytest.raises(ValueError, match="dim 8 != index dim 16"):
        ServingModel(second.store, FakeEncoder("model-b", 8), second.ranker)
    with pytest.raises(ValueError, match="ranker reads another index"):
        ServingModel(second.store, second.encoder, first.ranker)
