"""``service.member_query``: member feeds query with the newest engaged post's vector added
(``FEEDLINE_SERVICE_LATEST_WEIGHT``), on a real index and real member histories, and over the
real routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from index_store import IndexSettings, IndexStore
from processors.engagement_history import HistoryEvent, MemberHistories
from schemas import EmbeddingUpdate
from service.app import build_api
from service.feeds.history_feed import HistoryFeed
from service.feeds.index_feed import IndexFeed
from service.member_query import member_query_vector
from service.metrics import ServiceMetrics
from service.ranker import Ranker
from service.ranker_settings import RankerSettings
from service.serving import ServingModel, ServingSlot
from service.settings import ServiceSettings
from service.state import ServiceState
from streams.settings import KafkaSettings
from tests.unit.service.fake_encoder import FakeEncoder
from tests.unit.service.fake_encoder import update as fake_update

VERSION = "model-a"
ANGLES = {"a0": 0, "a1": 20, "a2": 40, "a3": 100, "a4": 120, "a5": 140}  # two clusters
MEMBER_ANGLE = 5  # the member's prompt sits in the first cluster


def at(degrees: float) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.array([np.cos(rad), np.sin(rad)], np.float32)


def update(entity_id: str, degrees: float) -> EmbeddingUpdate:
    return fake_update(entity_id, VERSION, 2, at(degrees))


@pytest.fixture
def store() -> IndexStore:
    index = IndexStore(2, VERSION, settings=IndexSettings(backend="flat"))
    for post_id, degrees in ANGLES.items():
        index.apply("post", post_id, update(post_id, degrees))
    index.apply("member", "m1", update("m1", MEMBER_ANGLE))
    return index


@pytest.fixture
def histories() -> MemberHistories:
    events = MemberHistories()
    events.add("m1", HistoryEvent("a0", "like", 1_000, None))
    events.add("m1", HistoryEvent("a4", "like", 2_000, None))  # the newest positive
    events.add("m1", HistoryEvent("a1", "impression", 3_000, None))  # newer, not positive
    return events


def test_the_newest_positive_post_is_added_at_the_weight(
    store: IndexStore, histories: MemberHistories
) -> None:
    member = at(MEMBER_ANGLE)
    assert histories.latest_post("m1", {"like"}) == "a4"
    blended = member_query_vector(store, histories, "m1", member, 1.0)
    expected = member + at(ANGLES["a4"])
    np.testing.assert_allclose(blended, expected / np.linalg.norm(expected), atol=1e-6)
    assert member_query_vector(store, histories, "m1", member, 0.0) is member


def test_no_positive_or_an_unindexed_latest_post_leaves_the_member_vector(
    store: IndexStore, histories: MemberHistories
) -> None:
    member = at(MEMBER_ANGLE)
    histories.add("m2", HistoryEvent("a3", "skip", 1_000, None))
    assert member_query_vector(store, histories, "m2", member, 1.0) is member
    assert member_query_vector(store, histories, "nobody", member, 1.0) is member
    histories.add("m1", HistoryEvent("gone", "like", 4_000, None))  # never indexed
    assert member_query_vector(store, histories, "m1", member, 1.0) is member


@pytest.fixture
async def client(
    store: IndexStore, histories: MemberHistories, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    kafka = KafkaSettings()
    metrics = ServiceMetrics(CollectorRegistry())
    feed = IndexFeed(kafka, IndexSettings(), metrics, dim=2, model_version=VERSION)
    history_feed = HistoryFeed(kafka, histories)
    feed.ready.set()
    history_feed.ready.set()
    ranker = Ranker.load(RankerSettings(), store, histories)
    slot = ServingSlot(ServingModel(store, FakeEncoder(VERSION, 2), ranker))
    settings = ServiceSettings(latest_weight=request.param)
    app = build_api()
    app.state.service = ServiceState(settings, slot, feed, history_feed, metrics, ())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def feed_ids(client: httpx.AsyncClient) -> tuple[list[str], list[str]]:
    feed = await client.get("/v1/members/m1/feed", params={"k": 3})
    retrieved = await client.post("/v1/retrieve", json={"member_id": "m1", "k": 3})
    assert feed.status_code == retrieved.status_code == 200, (feed.text, retrieved.text)
    return (
        [item["post_id"] for item in feed.json()["items"]],
        [item["post_id"] for item in retrieved.json()["items"]],
    )


@pytest.mark.parametrize("client", [0.0], indirect=True)
async def test_weight_zero_serves_the_member_vector_alone(client: httpx.AsyncClient) -> None:
    feed, retrieved = await feed_ids(client)
    assert feed == retrieved == ["a0", "a1", "a2"]  # nearest the prompt at 5 degrees


@pytest.mark.parametrize("client", [3.0], indirect=True)
async def test_a_weight_pulls_the_feed_toward_the_newest_engaged_post(
    client: httpx.AsyncClient,
) -> None:
    feed, retrieved = await feed_ids(client)
    # 5 degrees + 3 x (120 degrees): the query sits at about 101 degrees
    assert feed == retrieved == ["a3", "a4", "a5"]


@pytest.mark.parametrize("value", ["-0.5", "101", "heavy"])
def test_a_bad_latest_weight_in_the_environment_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("FEEDLINE_SERVICE_LATEST_WEIGHT", value)
    with pytest.raises(ValidationError, match="latest_weight"):
        ServiceSettings()
