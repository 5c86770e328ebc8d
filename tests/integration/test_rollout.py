"""Model rollouts on a real broker: a shadow index re-embedded from the compacted embeddings
topics, caught up with what arrives meanwhile, switched atomically in the live feed; and the
same through the running service's ``/v1/admin/rollout``.

The new model is a tiny randomly initialised BERT built from a config (32-dim, so both the
dimension and the model version differ from the old one); nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from index_store import IndexSettings, IndexStore
from models.encoder import TextEncoder
from models.settings import EncoderSettings
from schemas import EmbeddingUpdate, encode
from service.client import QueryClient
from service.feeds.feed_metrics import IndexMetrics, RolloutMetrics
from service.feeds.index_feed import IndexFeed
from service.feeds.rollout import Rollout, RolloutError, Shadow
from streams.dlq import error_headers
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from tests.integration.conftest import Pipeline
from tests.integration.events import delete, post, profile
from tests.integration.kafka_tools import read_topic, wait_until
from tests.integration.pipeline_tools import publish, wait_visible
from tests.tiny_models import save_tiny_model

pytestmark = pytest.mark.integration

OLD_DIM, OLD_MODEL = 8, "old-model@1"
POSTS, MEMBERS = 60, 15
DELETED = {f"p{i}" for i in range(0, POSTS, 12)}  # 5 tombstoned posts


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32-dim BERT with random weights and the MiniLM tokenizer, saved like a real model."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert")


@pytest.fixture(scope="module")
def new_encoder(tiny_bert: Path) -> TextEncoder:
    return TextEncoder.load(EncoderSettings(model_path=tiny_bert, device="cpu"))


def old_update(
    entity_id: str, version: int = 1, text: str | None = "", model: str = OLD_MODEL
) -> bytes:
    """An update of the old model; ``text=""`` gives a prompt derived from the id."""
    seed = zlib.crc32(f"{entity_id}/{version}".encode())
    vector = np.random.default_rng(seed).standard_normal(OLD_DIM).astype(np.float32)
    update = EmbeddingUpdate(
        entity="member" if entity_id.startswith("m") else "post",
        entity_id=entity_id,
        version=version,
        dim=OLD_DIM,
        vector_b64=EmbeddingUpdate.encode_vector(vector / np.linalg.norm(vector)),
        model_version=model,
        prompt_version="p1",
        attrs={"author_id": "a1"} if not entity_id.startswith("m") else {},
        event_time_ms=1_000 + version,
        prompted_at_ms=2_000 + version,
        embedded_at_ms=3_000 + version,
        text=prompt(entity_id, version) if text == "" else text,
    )
    return encode(update)


def prompt(entity_id: str, version: int) -> str:
    return f"{entity_id} version {version} writes about streaming systems"


def produce(kafka: KafkaSettings, *records: tuple[str, bytes | None]) -> None:
    """``(entity_id, value)`` pairs to the embeddings topic of the entity."""
    with EventProducer(kafka) as producer:
        for entity_id, value in records:
            entity = "members" if entity_id.startswith("m") else "posts"
            producer.publish_raw(kafka.topic(f"embeddings.{entity}"), entity_id.encode(), value)


class DuringBuild:
    """The new encoder, which on its first call (mid-build) publishes more records and checks
    that the live feed still serves the old model."""

    def __init__(self, encoder: TextEncoder, kafka: KafkaSettings, feed: IndexFeed) -> None:
        self.encoder, self.kafka, self.feed = encoder, kafka, feed
        self.model_version, self.dim = encoder.model_version, encoder.dim
        self.calls = 0
        self.old_store_during_build: str | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == 1:
            self.old_store_during_build = self.feed.store.model_version
            produce(
                self.kafka,
                *((f"late{i}", old_update(f"late{i}")) for i in range(5)),
                ("p1", old_update("p1", version=2)),  # a newer version arrives mid-build
                ("p2", None),  # a delete arrives mid-build
                ("m1", old_update("m1", version=2)),
            )
        return self.encoder.encode(texts)


async def start_feed(
    kafka: KafkaSettings, snapshots: Path, dim: int = OLD_DIM, model_version: str = OLD_MODEL
) -> tuple[IndexFeed, asyncio.Task[None]]:
    settings = IndexSettings(
        backend="flat", snapshot_dir=snapshots, consumer_group=f"{kafka.topic_prefix}index"
    )
    feed = IndexFeed(
        kafka, settings, IndexMetrics(CollectorRegistry()), dim=dim, model_version=model_version
    )
    await feed.start()
    task = asyncio.create_task(feed.run())
    await asyncio.wait_for(feed.ready.wait(), 30)
    return feed, task


async def stop_feed(feed: IndexFeed, task: asyncio.Task[None]) -> None:
    """Stop it, writing its final snapshot."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await feed.stop()


async def test_rollout_rebuilds_every_live_entity_and_switches_the_feed(
    kafka_factory: Callable[..., KafkaSettings], new_encoder: TextEncoder, tmp_path: Path
) -> None:
    kafka = kafka_factory()
    produce(
        kafka,
        *((f"p{i}", old_update(f"p{i}")) for i in range(POSTS)),
        *((f"m{i}", old_update(f"m{i}")) for i in range(MEMBERS)),
        *((p, None) for p in sorted(DELETED)),
        ("p0", old_update("p0", version=5)),  # late insert of a deleted post: stays deleted
        ("p3", old_update("p3", version=3)),
        ("p3", old_update("p3", version=2)),  # stale
        ("legacy-post", old_update("legacy-post", text=None)),  # written before `text`
        ("m-legacy", old_update("m-legacy", text=None)),
    )
    feed, task = await start_feed(kafka, tmp_path)
    old_store = feed.store
    assert old_store.counts() == {"posts": 56, "members": 16, "deleted_posts": 5}
    encoder = DuringBuild(new_encoder, kafka, feed)
    metrics = RolloutMetrics(CollectorRegistry())
    rollout = Rollout(kafka, encoder, IndexSettings(backend="flat"), metrics, batch_size=16)
    served_before_switch: list[str] = []

    async def switch(shadow: Shadow) -> None:
        assert rollout.status().state == "catching_up"
        served_before_switch.append(feed.store.model_version)
        await feed.switch(shadow.store, shadow.positions, reembed=new_encoder.encode)

    try:
        shadow = await asyncio.wait_for(rollout.run(switch), 60)
        assert encoder.old_store_during_build == OLD_MODEL
        assert served_before_switch == [OLD_MODEL]
        assert feed.store is shadow.store and feed.model_version == new_encoder.model_version
        check_shadow(shadow.store, new_encoder)
        check_progress(rollout, metrics)
        await check_updates_after_the_switch(kafka, feed, new_encoder)
    finally:
        await stop_feed(feed, task)
    assert old_store.model_version == OLD_MODEL and old_store.dim == OLD_DIM
    # a restart with the new model (FEEDLINE_ENCODER_MODEL_PATH set) restores the snapshot
    # the switched feed wrote, instead of replaying and re-embedding everything
    restarted, task = await start_feed(kafka, tmp_path, 32, new_encoder.model_version)
    await stop_feed(restarted, task)
    assert restarted.plan is not None and restarted.plan.reason == "restored"
    assert restarted.plan.snapshot is not None
    assert restarted.plan.snapshot.manifest.model_version == new_encoder.model_version
    assert restarted.store.counts() == feed.store.counts()


def check_shadow(store: IndexStore, encoder: TextEncoder) -> None:
    live_posts = {f"p{i}" for i in range(POSTS)} - DELETED - {"p2"} | {f"late{i}" for i in range(5)}
    assert store.dim == 32 and store.model_version == encoder.model_version
    assert store.counts() == {"posts": len(live_posts), "members": MEMBERS, "deleted_posts": 6}
    hits = store.search(encoder.encode(["streaming"])[0], k=100)
    assert {hit.post_id for hit, _ in hits} == live_posts
    assert all(store.is_deleted(p) and store.post(p) is None for p in DELETED | {"p2"})
    assert store.post("legacy-post") is None and store.member("m-legacy") is None
    p1, p3, m1 = store.post("p1"), store.post("p3"), store.member("m1")
    assert p1 is not None and p1.version == 2 and p1.event_time_ms == 1_002  # caught up
    assert p3 is not None and p3.version == 3 and p3.attrs == {"author_id": "a1"}
    assert m1 is not None and m1.version == 2 and m1.model_version == encoder.model_version
    expected = encoder.encode([prompt("m1", 2)])[0]
    np.testing.assert_allclose(m1.vector, expected, atol=1e-5)  # re-embedded from the text


def check_progress(rollout: Rollout, metrics: RolloutMetrics) -> None:
    status = rollout.status()
    assert status.state == "switched" and status.error is None
    # built: 55 live posts with text (60 - 5 deleted), 15 members; caught up: late0..4 and
    # p1 v2, m1 v2 (p2's delete only removes a post already counted)
    assert status.target == status.embedded == {"post": 55 + 6, "member": 15 + 1}
    assert status.skipped_no_text == {"post": 1, "member": 1}
    assert status.deleted_posts == 6
    version = rollout.model_version

    def gauge(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    for entity, total in status.target.items():
        assert gauge("feedline_rollout_entities", entity=entity, state="target") == total
        assert gauge("feedline_rollout_entities", entity=entity, state="embedded") == total
    assert gauge("feedline_rollout_entities", entity="post", state="skipped_no_text") == 1
    assert gauge("feedline_rollout_state", model_version=version, state="switched") == 1
    assert gauge("feedline_rollout_state", model_version=version, state="building") == 0
    assert gauge("feedline_rollouts_total", outcome="switched") == 1
    duration = gauge("feedline_rollout_duration_seconds")
    assert duration is not None and 0 < duration == pytest.approx(status.seconds, abs=0.01)
    assert (gauge("feedline_rollout_records_total", phase="catching_up") or 0) >= 8


async def check_updates_after_the_switch(
    kafka: KafkaSettings, feed: IndexFeed, encoder: TextEncoder
) -> None:
    """Embedding workers still on the old model: updates with text are re-embedded by the
    feed, those without are dead-lettered."""
    produce(
        kafka,
        ("after", old_update("after")),
        ("no-text", old_update("no-text", text=None)),
        ("other", old_update("other", model="third-model@9")),
    )
    arrived = lambda: feed.store.post("after") and feed.store.post("other")  # noqa: E731
    await asyncio.to_thread(wait_until, arrived, 20, "the updates after the switch")
    after = feed.store.post("after")
    assert after is not None and after.model_version == encoder.model_version
    topic = kafka.topic("embeddings.posts")
    letters = await asyncio.to_thread(read_topic, kafka, topic + ".dlq", 1)
    assert [(m.key(), error_headers(m.headers() or [])["reason"]) for m in letters] == [
        (b"no-text", "unknown_model_version")
    ]
    reembedded = feed.metrics.registry.get_sample_value(
        "feedline_index_reembedded_updates_total", {"entity": "post"}
    )
    assert reembedded is not None and reembedded >= 2


async def test_a_rollout_without_any_text_fails_and_keeps_the_old_index(
    kafka_factory: Callable[..., KafkaSettings], new_encoder: TextEncoder
) -> None:
    kafka = kafka_factory(partitions=1)
    produce(kafka, *((f"p{i}", old_update(f"p{i}", text=None)) for i in range(5)))
    metrics = RolloutMetrics(CollectorRegistry())
    rollout = Rollout(kafka, new_encoder, IndexSettings(backend="flat"), metrics)
    switched: list[Shadow] = []

    async def switch(shadow: Shadow) -> None:
        switched.append(shadow)

    with pytest.raises(RolloutError, match=r"none of the 5 live updates .* carries its prompt"):
        await rollout.run(switch)
    assert switched == [] and rollout.status().state == "failed"
    assert "replay the" in (rollout.status().error or "")
    failed = metrics.registry.get_sample_value(
        "feedline_rollout_state", {"model_version": new_encoder.model_version, "state": "failed"}
    )
    assert failed == 1


# --- through the running service -------------------------------------------------------------


@pytest.fixture(scope="module")
def service(
    kafka_factory: Callable[..., KafkaSettings], pipeline_factory: Callable[..., Pipeline]
) -> Iterator[tuple[KafkaSettings, QueryClient, str]]:
    kafka = kafka_factory()
    pipeline = pipeline_factory(kafka)
    with QueryClient(pipeline.url) as client:
        wait_until(client.is_ready, 180, f"the service to be ready\n{pipeline.logs()}")
        yield kafka, client, pipeline.url


def test_admin_rollout_switches_the_service_to_the_new_model(
    service: tuple[KafkaSettings, QueryClient, str], tiny_bert: Path
) -> None:
    kafka, client, base_url = service
    topics = ["kafka", "baking", "taxes", "gardening", "chess", "sailing"]
    publish(
        kafka,
        *(post(f"s{i}", f"A post about {t} number {i}") for i, t in enumerate(topics)),
        profile("reader", "Data engineer", ["Kafka", "Python"]),
        delete("s5"),
    )
    wait_visible(client, *(f"s{i}" for i in range(5)))
    wait_until(lambda: client.stats().members >= 1, 60, "the member's vector")
    old = client.stats().model_version
    url = "/v1/admin/rollout"
    with httpx.Client(base_url=base_url, timeout=10) as http:
        bad = http.post(url, json={"model_path": str(tiny_bert / "absent")})
        assert bad.status_code == 422, bad.text
        started = http.post(url, json={"model_path": str(tiny_bert)})
        assert started.status_code == 202, started.text
        assert started.json()["serving_model_version"] == old
        conflict = http.post(url, json={"model_path": str(tiny_bert)})
        assert conflict.status_code == 409, conflict.text
        seen = []

        def switched() -> bool:
            seen.append(client.retrieve(text="kafka streams", k=3).model_version)
            return bool(http.get(url).json()["state"] == "switched")

        wait_until(switched, 60, f"the rollout to switch: {http.get(url).json()}")
        status = http.get(url).json()
    assert seen[0] == old and all(v in (old, status["model_version"]) for v in seen)
    new = status["model_version"]
    assert new.startswith(tiny_bert.name) and status["serving_model_version"] == new
    assert status["entities"]["post"]["embedded"] >= 5
    assert status["entities"]["member"] == {"target": 1, "embedded": 1, "skipped_no_text": 0}
    stats = client.stats()
    assert stats.model_version == new and stats.posts == 5 and stats.members == 1
    feed = client.feed("reader", k=3)
    assert feed.model_version == new and len(feed.items) == 3 and feed.ranking == "retrieval"
    assert client.post("s5") is None
    # the embedding worker still runs the old model: the service re-embeds its updates
    publish(kafka, post("s-after", "A post about kafka written after the rollout"))
    wait_visible(client, "s-after")
    info = client.post("s-after")
    assert info is not None and info.model_version == new
    assert 'feedline_rollout_state{model_version="' + new in client.metrics_text()
