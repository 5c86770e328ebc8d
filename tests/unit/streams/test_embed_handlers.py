"""``streams.embed_handlers.EmbedHandlers`` with the real all-MiniLM-L6-v2 encoder."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from models import EncoderSettings, TextEncoder
from schemas import EmbeddingUpdate, PromptRequest, decode, encode
from streams.dlq import error_headers
from streams.embed_handlers import EmbedHandlers
from streams.metrics import EmbedMetrics
from streams.records import Incoming
from streams.settings import KafkaSettings

NOW = 1_700_003_000_000
KAFKA = KafkaSettings(topic_prefix="t.")


@pytest.fixture(scope="module")
def encoder() -> Iterator[TextEncoder]:
    yield TextEncoder.load(EncoderSettings())


class Recorder:
    """An async ``embed`` over the real encoder that remembers what it was asked."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.calls: list[list[str]] = []

    async def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.encoder.encode(texts)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def handlers(encoder: TextEncoder, registry: CollectorRegistry) -> EmbedHandlers:
    return EmbedHandlers(KAFKA, EmbedMetrics(registry), encoder.model_version, clock=lambda: NOW)


def request(entity_id: str, version: int, **overrides: Any) -> PromptRequest:
    entity = "member" if entity_id.startswith("m") else "post"
    fields: dict[str, Any] = {
        "entity": entity,
        "entity_id": entity_id,
        "version": version,
        "text": f"{entity} {entity_id} version {version} about machine learning",
        "prompt_version": f"{entity}-simple-1",
        "attrs": {"author_id": "a1"} if entity == "post" else {},
        "event_time_ms": 1_000 + version,
        "prompted_at_ms": 2_000 + version,
    }
    return PromptRequest(**{**fields, **overrides})


def incoming(value: PromptRequest | bytes | None, offset: int) -> Incoming:
    if isinstance(value, PromptRequest):
        topic = f"t.prompts.{value.entity}s"
        key: bytes | None = value.entity_id.encode()
        raw: bytes | None = encode(value)
    else:
        topic, key, raw = "t.prompts.posts", b"p?", value
    return Incoming(topic, 0, offset, key, raw, [])


def count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_upsert_becomes_an_embedding_update(
    handlers: EmbedHandlers, encoder: TextEncoder, registry: CollectorRegistry
) -> None:
    req = request("p1", 1)
    embed = Recorder(encoder)
    [out] = await handlers.handle([incoming(req, 0)], embed)
    assert (out.topic, out.key) == ("t.embeddings.posts", b"p1")
    update = decode(EmbeddingUpdate, out.value)
    assert (update.entity, update.entity_id, update.version, update.dim) == ("post", "p1", 1, 384)
    assert update.model_version == encoder.model_version
    assert (update.prompt_version, update.attrs) == ("post-simple-1", {"author_id": "a1"})
    assert (update.event_time_ms, update.prompted_at_ms, update.embedded_at_ms) == (
        1_001,
        2_001,
        NOW,
    )
    vector = update.vector()
    assert vector.shape == (384,)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(vector, encoder.encode([req.text])[0], atol=1e-5)
    assert embed.calls == [[req.text]]
    assert count(registry, "feedline_embed_updates_total", entity="post", op="upsert") == 1
    assert count(registry, "feedline_events_total", topic="prompts.posts", outcome="processed") == 1


async def test_superseded_versions_are_dropped(
    handlers: EmbedHandlers, encoder: TextEncoder, registry: CollectorRegistry
) -> None:
    requests = [
        request("p1", 1),
        request("m1", 1),
        request("p1", 2),
        request("p2", 1),
        request("p1", 3),
        request("m1", 2),
    ]
    embed = Recorder(encoder)
    out = await handlers.handle([incoming(r, i) for i, r in enumerate(requests)], embed)
    assert embed.calls == [[requests[3].text, requests[4].text, requests[5].text]]
    assert [(o.topic, o.key) for o in out] == [
        ("t.embeddings.posts", b"p2"),
        ("t.embeddings.posts", b"p1"),
        ("t.embeddings.members", b"m1"),
    ]
    updates = [decode(EmbeddingUpdate, o.value) for o in out]
    assert [(u.entity_id, u.version) for u in updates] == [("p2", 1), ("p1", 3), ("m1", 2)]
    for update, req in zip(updates, requests[3:], strict=True):
        np.testing.assert_allclose(update.vector(), encoder.encode([req.text])[0], atol=1e-5)
    assert count(registry, "feedline_embed_superseded_total", entity="post") == 2
    assert count(registry, "feedline_embed_superseded_total", entity="member") == 1


async def test_delete_becomes_a_tombstone(
    handlers: EmbedHandlers, encoder: TextEncoder, registry: CollectorRegistry
) -> None:
    requests = [request("p1", 1), request("p1", 2, op="delete", text=""), request("m1", 1)]
    embed = Recorder(encoder)
    out = await handlers.handle([incoming(r, i) for i, r in enumerate(requests)], embed)
    assert [(o.topic, o.key, o.value is None) for o in out] == [
        ("t.embeddings.posts", b"p1", True),
        ("t.embeddings.members", b"m1", False),
    ]
    assert embed.calls == [[requests[2].text]]
    assert count(registry, "feedline_embed_updates_total", entity="post", op="delete") == 1


async def test_only_deletes_never_call_the_model(
    handlers: EmbedHandlers, encoder: TextEncoder
) -> None:
    embed = Recorder(encoder)
    out = await handlers.handle([incoming(request("p1", 4, op="delete", text=""), 0)], embed)
    assert [(o.topic, o.key, o.value) for o in out] == [("t.embeddings.posts", b"p1", None)]
    assert embed.calls == []
    assert await handlers.handle([], embed) == []


async def test_bad_record_is_dead_lettered_and_the_rest_embedded(
    handlers: EmbedHandlers, encoder: TextEncoder, registry: CollectorRegistry
) -> None:
    records = [
        incoming(b"{not json", 7),
        incoming(request("p1", 1), 8),
        incoming(encode(request("p2", 1))[:-1] + b', "version": 0}', 9),
    ]
    out = await handlers.handle(records, Recorder(encoder))
    assert [o.topic for o in out] == [
        "t.prompts.posts.dlq",
        "t.prompts.posts.dlq",
        "t.embeddings.posts",
    ]
    assert (out[0].key, out[0].value) == (b"p?", b"{not json")
    assert error_headers(out[0].headers or [])["reason"] == "malformed_json"
    assert error_headers(out[0].headers or [])["offset"] == "7"
    assert error_headers(out[1].headers or [])["reason"] == "schema_invalid"
    assert "version" in error_headers(out[1].headers or [])["message"]
    assert decode(EmbeddingUpdate, out[2].value).entity_id == "p1"
    assert (
        count(
            registry, "feedline_dlq_messages_total", topic="prompts.posts", reason="malformed_json"
        )
        == 1
    )
    assert (
        count(registry, "feedline_events_total", topic="prompts.posts", outcome="dead_lettered")
        == 2
    )


async def test_vectors_are_unit_length_and_distinct_per_text(
    handlers: EmbedHandlers, encoder: TextEncoder
) -> None:
    texts = ["kafka consumer lag", "chocolate cake recipe", "", "x" * 5_000]
    records = [incoming(request(f"p{i}", 1, text=t), i) for i, t in enumerate(texts)]
    out = await handlers.handle(records, Recorder(encoder))
    vectors = np.stack([decode(EmbeddingUpdate, o.value).vector() for o in out])
    assert vectors.shape == (4, encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({v.tobytes() for v in vectors}) == 4
