"""GR ranking in the running query service: histories from the engagement stream, /v1/rank,
and feeds ranked from 500 retrieved candidates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from models.encoder import default_model_path, encoder_version, load_tokenizer
from models.gr.checkpoint import save_checkpoint
from models.gr.config import GRConfig
from models.settings import EncoderSettings
from service.client import QueryClient
from streams.settings import KafkaSettings
from tests.integration.conftest import Pipeline
from tests.integration.events import engagement, post, profile
from tests.integration.kafka_tools import wait_until
from tests.integration.pipeline_tools import VISIBLE_DEADLINE_S, publish, wait_visible
from tests.unit.models.gr.gr_fixtures import random_model

pytestmark = pytest.mark.integration

MAX_CANDIDATES = 40


@pytest.fixture(scope="module")
def kafka(kafka_factory: Callable[..., KafkaSettings]) -> KafkaSettings:
    return kafka_factory()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An untrained GR for the default encoder: the wiring, not the quality, is under test."""
    path = tmp_path_factory.mktemp("gr") / "checkpoint"
    version = save_checkpoint(
        random_model(GRConfig(dropout=0.0)),
        path,
        embedding_model_version=encoder_version(
            default_model_path(), load_tokenizer(EncoderSettings())[1]
        ),
    )
    return path, version


@pytest.fixture(scope="module")
def client(
    kafka: KafkaSettings,
    checkpoint: tuple[Path, str],
    pipeline_factory: Callable[..., Pipeline],
) -> Iterator[QueryClient]:
    env = {
        "FEEDLINE_RANKER_CHECKPOINT": str(checkpoint[0]),
        "FEEDLINE_RANKER_MAX_CANDIDATES": str(MAX_CANDIDATES),
    }
    pipeline = pipeline_factory(kafka, env)
    with QueryClient(pipeline.url) as query_client:
        wait_until(query_client.is_ready, 180, f"the service to be ready\n{pipeline.logs()}")
        yield query_client


@pytest.fixture(scope="module")
def world(kafka: KafkaSettings, client: QueryClient) -> list[str]:
    """12 posts and a member who saw some of them."""
    posts = [
        post(f"r{i}", f"Post number {i} about data engineering and pipelines") for i in range(12)
    ]
    publish(kafka, profile("reader", "Data engineer", ["Kafka", "Python"]), *posts)
    wait_visible(client, *(p.post_id for p in posts))
    wait_until(lambda: client.stats().members >= 1, VISIBLE_DEADLINE_S, "member vector")
    publish(kafka, engagement("reader", "r1", "impression"), engagement("reader", "r1", "like"))
    return [p.post_id for p in posts]


def test_rank_scores_posts_and_reports_unknown_ones(
    client: QueryClient, world: list[str], checkpoint: tuple[Path, str]
) -> None:
    wait_until(
        lambda: client.rank("reader", ["r1"]).history_steps == 2,
        VISIBLE_DEADLINE_S,
        "the engagements to reach the member's history",
    )
    ranked = client.rank("reader", [*world[:6], "never-posted"], task_weights={"like": 1.0})
    assert ranked.ranker_version == checkpoint[1]
    assert ranked.unknown_post_ids == ["never-posted"]
    assert sorted(item.post_id for item in ranked.items) == sorted(world[:6])
    scores = [item.score for item in ranked.items]
    assert scores == sorted(scores, reverse=True)
    for item in ranked.items:
        assert set(item.task_scores) == {"click", "skip", "long_dwell", "like", "comment", "share"}
        assert item.score == pytest.approx(item.task_scores["like"], rel=1e-5)


def test_member_without_history_is_ranked(client: QueryClient, world: list[str]) -> None:
    ranked = client.rank("stranger", world[:3])
    assert ranked.history_steps == 0 and len(ranked.items) == 3


def test_feed_is_ranked_by_the_gr(client: QueryClient, world: list[str]) -> None:
    feed = client.feed("reader", k=5)
    assert feed.ranking == "gr" and feed.ranker_version and feed.ranking_note is None
    assert len(feed.items) == 5
    rank_scores = [item.rank_score for item in feed.items]
    assert None not in rank_scores
    assert rank_scores == sorted(rank_scores, reverse=True)  # type: ignore[type-var]
    retrieved = {item.post_id for item in client.retrieve(member_id="reader", k=500).items}
    assert {item.post_id for item in feed.items} <= retrieved


def test_rank_bad_input(client: QueryClient, world: list[str]) -> None:
    url = str(client._http.base_url)
    cases = [
        (
            {"member_id": "reader", "post_ids": ["r1"] * (MAX_CANDIDATES + 1)},
            413,
            "payload_too_large",
        ),
        ({"member_id": "reader", "post_ids": []}, 422, "validation"),
        (
            {"member_id": "reader", "post_ids": ["r1"], "task_weights": {"retweet": 1}},
            422,
            "validation",
        ),
        ({"member_id": "bad id", "post_ids": ["r1"]}, 422, "validation"),
        ({"post_ids": ["r1"]}, 422, "validation"),
    ]
    for body, status, error_type in cases:
        response = httpx.post(f"{url}/v1/rank", json=body, timeout=10)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error_type"] == error_type and response.json()["error"]
