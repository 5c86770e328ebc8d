"""The three roles on a real broker: events in, retrievable posts and feeds out."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from rich.console import Console

from feedline.status import collect_status, kafka_lag_source, render
from service.client import QueryClient
from streams.dlq import error_headers
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from tests.integration.conftest import Pipeline
from tests.integration.events import delete, engagement, post, profile
from tests.integration.kafka_tools import metric_value, read_topic, wait_until
from tests.integration.pipeline_tools import VISIBLE_DEADLINE_S, publish, wait_visible

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka(kafka_factory: Callable[..., KafkaSettings]) -> KafkaSettings:
    return kafka_factory()


@pytest.fixture(scope="module")
def pipeline(
    kafka: KafkaSettings, pipeline_factory: Callable[[KafkaSettings], Pipeline]
) -> Pipeline:
    started = pipeline_factory(kafka)
    with QueryClient(started.url) as client:
        wait_until(client.is_ready, 180, f"the service to be ready\n{started.logs()}")
    return started


@pytest.fixture(scope="module")
def client(pipeline: Pipeline) -> Iterator[QueryClient]:
    with QueryClient(pipeline.url) as query_client:
        yield query_client


def test_published_posts_become_retrievable_by_text(
    kafka: KafkaSettings, client: QueryClient
) -> None:
    publish(
        kafka,
        post("k8s-1", "Kubernetes cluster autoscaling cut our cloud bill by a third."),
        post("bake-1", "My sourdough bread recipe: flour, water, salt and patience."),
        post("tax-1", "Quarterly tax filing deadlines every small business owner should know."),
    )
    wait_visible(client, "k8s-1", "bake-1", "tax-1")
    best = client.retrieve(text="autoscaling kubernetes nodes in the cloud", k=3).items
    assert best[0].post_id == "k8s-1"
    info = client.post("k8s-1")
    assert info is not None and info.attrs["author_id"] == "author1"
    assert info.indexed_at_ms >= info.event_time_ms


def test_member_feed_follows_interests_and_excludes_own_posts(
    kafka: KafkaSettings, client: QueryClient
) -> None:
    publish(
        kafka,
        profile(
            "ml-fan", "Machine learning engineer", ["PyTorch", "deep learning", "transformers"]
        ),
        post("own-ml", "Training transformers with PyTorch on GPUs", author_id="ml-fan"),
        post("other-ml", "Deep learning tips: fine-tuning transformer models in PyTorch"),
        post("garden-1", "Tomatoes need six hours of sun and deep watering."),
    )
    wait_visible(client, "own-ml", "other-ml", "garden-1")
    wait_until(lambda: _has_member(client, "ml-fan"), VISIBLE_DEADLINE_S, "member vector")
    feed = client.feed("ml-fan", k=50).items
    ids = [item.post_id for item in feed]
    assert "own-ml" not in ids
    assert ids.index("other-ml") < ids.index("garden-1")
    assert all(item.author_id != "ml-fan" for item in feed)


def test_engagement_updates_member_vector(kafka: KafkaSettings, client: QueryClient) -> None:
    publish(kafka, profile("fresh", "Professional", []), post("cook-1", "Braising short ribs"))
    wait_visible(client, "cook-1")
    wait_until(lambda: _has_member(client, "fresh"), VISIBLE_DEADLINE_S, "first member vector")
    before = client.retrieve(member_id="fresh", k=1).items[0].score
    publish(kafka, engagement("fresh", "cook-1", "like"))

    def moved_towards_post() -> bool:
        items = client.retrieve(member_id="fresh", k=50).items
        score = next(i.score for i in items if i.post_id == "cook-1")
        return score > before + 0.05

    wait_until(moved_towards_post, VISIBLE_DEADLINE_S, "member vector to include the liked post")


def test_deleted_post_disappears(kafka: KafkaSettings, client: QueryClient) -> None:
    publish(kafka, post("doomed", "Announcing our quarterly results for investors"))
    wait_visible(client, "doomed")
    publish(kafka, delete("doomed"))
    wait_until(lambda: client.post("doomed") is None, VISIBLE_DEADLINE_S, "the delete")
    found = client.retrieve(text="quarterly results for investors", k=100).items
    assert "doomed" not in [item.post_id for item in found]
    assert client.stats().deleted_posts >= 1


def test_bad_events_are_dead_lettered_and_processing_goes_on(
    kafka: KafkaSettings, client: QueryClient, pipeline: Pipeline
) -> None:
    posts_topic = kafka.topic("posts.created")
    bad = [
        (posts_topic, b"bad-json", b'{"schema_version": 1, "post_id": '),
        (
            posts_topic,
            b"bad-format",
            post("bad-format", "x").model_dump_json().replace('"text"', '"gif"', 1).encode(),
        ),
        (posts_topic, b"other-key", post("key-owner", "x").model_dump_json().encode()),
        (
            kafka.topic("engagements"),
            b"p",
            b'{"schema_version": 1, "member_id": "m", "post_id": "p", '
            b'"action": "wave", "ts_ms": 1}',
        ),
        (kafka.topic("members.profile"), b"m", b"[1, 2, 3]"),
    ]
    with EventProducer(kafka) as producer:
        for topic, key, value in bad:
            producer.publish_raw(topic, key, value)
    publish(kafka, post("after-bad", "A valid post right after the broken ones"))
    wait_visible(client, "after-bad")

    letters = read_topic(kafka, posts_topic + ".dlq", expect=3)
    reasons = {m.key(): error_headers(m.headers() or [])["reason"] for m in letters}
    assert reasons == {b"bad-json": "malformed_json", b"bad-format": "schema_invalid",
                       b"other-key": "key_mismatch"}  # fmt: skip
    original = {m.key(): m.value() for m in letters}
    assert original[b"bad-json"] == bad[0][2]
    headers = error_headers(read_topic(kafka, posts_topic + ".dlq", expect=1)[0].headers() or [])
    assert headers["topic"] == posts_topic and headers["class"] == "InvalidRecord"
    assert int(headers["offset"]) >= 0 and headers["message"]
    engagement_letters = read_topic(kafka, kafka.topic("engagements.dlq"), expect=1)
    assert "action" in error_headers(engagement_letters[0].headers() or [])["message"]
    profile_letters = read_topic(kafka, kafka.topic("members.profile.dlq"), expect=1)
    assert error_headers(profile_letters[0].headers() or [])["reason"] == "not_an_object"

    metrics_url = f"http://127.0.0.1:{pipeline.prompts_metrics_port}/metrics"
    labels = {"topic": "posts.created", "reason": "malformed_json"}
    assert metric_value(metrics_url, "feedline_dlq_messages_total", labels) == 1.0
    dead = {"topic": "posts.created", "outcome": "dead_lettered"}
    assert metric_value(metrics_url, "feedline_events_total", dead) == 3.0


def test_filters_apply_before_top_k_over_http(
    kafka: KafkaSettings, client: QueryClient, pipeline: Pipeline
) -> None:
    publish(
        kafka,
        profile("filt", "Data engineer", ["Apache Spark", "streaming"]),
        post("f-en-video", "Spark streaming pipelines at scale", language="en", format="video"),
        post("f-de-text", "Spark Streaming: Datenpipelines im grossen Massstab", language="de"),
        post("f-en-text", "Tuning Spark batch jobs for throughput", language="en"),
    )
    wait_visible(client, "f-en-video", "f-de-text", "f-en-text")
    wait_until(lambda: _has_member(client, "filt"), VISIBLE_DEADLINE_S, "member vector")
    feed_url = f"{pipeline.url}/v1/members/filt/feed"

    def feed(**params: object) -> list[str]:
        response = httpx.get(feed_url, params={"k": 50, **params}, timeout=10)
        assert response.status_code == 200, response.text
        return [item["post_id"] for item in response.json()["items"]]

    assert feed(language="en", format="video") == ["f-en-video"]
    assert set(feed(language=["en", "de"], exclude="f-en-video")) == {"f-de-text", "f-en-text"}
    assert feed(created_after_ms=4_000_000_000_000) == []
    by_text = client.retrieve(text="Spark streaming pipelines", k=5)
    assert len(by_text.items) == 5  # unfiltered: other tests' posts fill up k
    filtered = httpx.post(
        f"{pipeline.url}/v1/retrieve",
        json={"text": "Spark streaming pipelines", "k": 5, "filters": {"languages": ["de"]}},
        timeout=10,
    ).json()
    assert [item["post_id"] for item in filtered["items"]] == ["f-de-text"]
    assert filtered["items"][0]["language"] == "de"
    too_many = {"text": "x", "filters": {"exclude_post_ids": [f"p{i}" for i in range(10_001)]}}
    for body, status in [
        (too_many, 413),
        ({"text": "x", "filters": {"formats": ["hologram"]}}, 422),
        ({"text": "x", "filters": {"colour": "red"}}, 422),
    ]:
        response = httpx.post(f"{pipeline.url}/v1/retrieve", json=body, timeout=10)
        assert response.status_code == status, response.text


def test_api_errors_have_status_and_body(client: QueryClient, pipeline: Pipeline) -> None:
    cases = [
        ("GET", "/v1/members/nobody/feed", None, 404, "not_found"),
        ("GET", "/v1/members/m1/feed?k=0", None, 422, "validation"),
        ("GET", "/v1/members/m1/feed?k=100000", None, 422, "validation"),
        ("GET", "/v1/members/bad%20id/feed", None, 422, "validation"),
        ("POST", "/v1/retrieve", {"member_id": "m1", "text": "both"}, 422, "validation"),
        ("POST", "/v1/retrieve", {"k": 5}, 422, "validation"),
        ("POST", "/v1/retrieve", {"text": "x" * 20_000}, 413, "payload_too_large"),
        ("GET", "/v1/posts/never-seen", None, 404, "not_found"),
        ("GET", "/v1/nowhere", None, 404, "not_found"),
    ]
    for method, path, body, status, error_type in cases:
        response = httpx.request(method, pipeline.url + path, json=body, timeout=10)
        assert response.status_code == status, (path, response.text)
        assert response.json()["error_type"] == error_type and response.json()["error"]


def test_health_readiness_and_metrics(client: QueryClient, pipeline: Pipeline) -> None:
    assert httpx.get(pipeline.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(pipeline.url + "/readyz").status_code == 200
    text = client.metrics_text()
    assert "feedline_index_ready 1.0" in text
    posts = client.stats().posts
    assert (
        metric_value(pipeline.url + "/metrics", "feedline_index_vectors", {"entity": "post"})
        == posts
    )
    publish(pipeline.kafka, post("staged-1", "Stage timings of a post made visible live"))
    wait_visible(client, "staged-1")
    for stage in ("event_to_prompt", "prompt_to_embedding", "embedding_to_visible"):
        labels = {"stage": stage, "entity": "post"}
        count = metric_value(
            pipeline.url + "/metrics", "feedline_freshness_stage_seconds_count", labels
        )
        assert count >= 1, stage
    embed_url = f"http://127.0.0.1:{pipeline.embed_metrics_port}/metrics"
    upserts = {"entity": "post", "op": "upsert"}
    assert metric_value(embed_url, "feedline_embed_updates_total", upserts) >= posts
    assert metric_value(embed_url, "feedline_embed_tokens_total", {}) > 10 * posts
    assert metric_value(embed_url, "feedline_embed_batch_size_count", {}) >= 1


def _has_member(client: QueryClient, member_id: str) -> bool:
    try:
        client.feed(member_id, k=1)
    except httpx.HTTPStatusError:
        return False
    return True


def test_without_a_gr_checkpoint_feeds_say_they_are_in_retrieval_order(
    kafka: KafkaSettings, client: QueryClient, pipeline: Pipeline
) -> None:
    publish(kafka, profile("unranked", "Analyst", ["SQL"]), post("u-1", "Window functions"))
    wait_visible(client, "u-1")
    wait_until(lambda: _has_member(client, "unranked"), VISIBLE_DEADLINE_S, "member vector")
    feed = client.feed("unranked", k=3)
    assert feed.ranking == "retrieval" and feed.ranker_version is None
    assert feed.ranking_note == "retrieval order: no GR checkpoint configured"
    assert all(item.rank_score is None for item in feed.items)
    response = httpx.post(
        f"{pipeline.url}/v1/rank", json={"member_id": "unranked", "post_ids": ["x"]}, timeout=10
    )
    assert response.status_code == 503 and response.json()["error_type"] == "ranker_unavailable"
    assert client.stats().ranker_note == "no GR checkpoint configured"


def test_status_screen_shows_roles_index_and_lag(
    kafka: KafkaSettings, client: QueryClient, pipeline: Pipeline
) -> None:
    urls = {
        "prompts": f"http://127.0.0.1:{pipeline.prompts_metrics_port}/metrics",
        "embed": f"http://127.0.0.1:{pipeline.embed_metrics_port}/metrics",
        "serve": f"{pipeline.url}/metrics",
    }
    publish(kafka, post("status-1", "A post the status screen waits for"))
    wait_visible(client, "status-1")
    lag = kafka_lag_source(kafka)
    wanted = {kafka.topic("feedline-embed"), kafka.topic("feedline-prompts")}
    wait_until(
        lambda: wanted <= {line.group for line in lag()}, 60, "both pipeline groups in the lag"
    )
    report = collect_status(pipeline.url, urls, lag)
    assert all(role.up for role in report.roles), report.roles
    assert report.stats is not None and report.stats["posts"] == client.stats().posts
    assert report.lag_error is None
    assert wanted <= {line.group for line in report.lag}
    console = Console(record=True, width=200)
    console.print(render(report))
    screen = console.export_text()
    assert "feedline status" in screen and kafka.topic("prompts.posts") in screen
