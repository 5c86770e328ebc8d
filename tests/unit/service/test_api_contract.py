"""The query service against its own OpenAPI document, fuzzed by schemathesis.

The real routes and error handlers on a real index (posts, a member, a GR checkpoint), with
a stand-in text encoder; examples are bounded and derandomised so the test is quick and
repeatable (200 examples per operation passed when this was written; ``make test`` runs
30). Every default check must pass (``schemathesis.toml`` adds 413 to the statuses that
reject invalid input): no server errors, documented status codes,
content types and headers, bodies that match their schemas, invalid input rejected and
valid input accepted."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from index_store import IndexSettings, IndexStore
from models.gr.checkpoint import save_checkpoint
from models.gr.config import GRConfig
from models.settings import EncoderSettings
from processors.engagement_history import MemberHistories
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
from tests.unit.models.gr.gr_fixtures import random_model
from tests.unit.service.fake_encoder import FakeEncoder, update

DIM, VERSION = 8, "model-contract"
CHECKPOINT_DIR = tempfile.TemporaryDirectory(prefix="feedline-contract-")
"""Holds the GR checkpoint while the module lives (the schema loads at import, before any
fixture exists); removed when the session ends."""


def contract_app() -> FastAPI:
    """The API with a ready state: 20 posts ``a0``…, member ``m1``, a random GR checkpoint."""
    histories = MemberHistories(max_steps=100)
    store = IndexStore(DIM, VERSION, settings=IndexSettings(backend="flat"))
    for i in range(20):
        store.apply("post", f"a{i}", update(f"a{i}", VERSION, DIM))
    store.apply("member", "m1", update("m1", VERSION, DIM))
    checkpoint = Path(CHECKPOINT_DIR.name) / "gr"
    config = GRConfig(embedding_dim=DIM, d_model=16, n_heads=2)
    save_checkpoint(random_model(config), checkpoint, embedding_model_version=VERSION)
    ranker = Ranker.load(RankerSettings(checkpoint=checkpoint), store, histories)
    kafka, metrics = KafkaSettings(), ServiceMetrics(CollectorRegistry())
    feed = IndexFeed(kafka, IndexSettings(), metrics, dim=DIM, model_version=VERSION)
    history_feed = HistoryFeed(kafka, histories)
    feed.ready.set()
    history_feed.ready.set()
    slot = ServingSlot(ServingModel(store, FakeEncoder(VERSION, DIM), ranker))
    rollouts = RolloutController(
        kafka, EncoderSettings(), IndexSettings(), feed, slot, histories, metrics
    )
    app = build_api()
    app.state.service = ServiceState(
        ServiceSettings(), slot, feed, history_feed, metrics, (), rollouts=rollouts
    )
    return app


ROOT = Path(__file__).resolve().parents[3]
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    contract_app(),
    config=SchemathesisConfig.from_path(str(ROOT / "schemathesis.toml")),
)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_service_answers_as_its_document_says(case: schemathesis.Case) -> None:
    excluded = []
    if case.operation.path == "/v1/admin/rollout" and case.method == "POST":
        # model_path names a directory on the service's host: no schema can say which exist,
        # so any generated path is rejected with 422 (documented), never accepted
        excluded.append(positive_data_acceptance)
    case.call_and_validate(excluded_checks=excluded)
