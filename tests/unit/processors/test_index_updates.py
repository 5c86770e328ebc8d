"""``processors.index_updates``: an embedding update from a prompt request and its vector."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from processors.index_updates import embedding_update
from schemas import EmbeddingUpdate, PromptRequest


def request(**overrides: Any) -> PromptRequest:
    fields: dict[str, Any] = {
        "entity": "post",
        "entity_id": "p1",
        "version": 4,
        "text": "post | format: text\ntext: hi",
        "prompt_version": "post-simple-1",
        "attrs": {"author_id": "a1", "format": "text"},
        "event_time_ms": 100,
        "prompted_at_ms": 200,
    }
    return PromptRequest(**{**fields, **overrides})


def test_builds_the_update_for_the_request() -> None:
    vector = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    update = embedding_update(request(), vector, "model@abc", now_ms=300)
    assert update == EmbeddingUpdate(
        entity="post",
        entity_id="p1",
        version=4,
        dim=3,
        vector_b64=EmbeddingUpdate.encode_vector(vector),
        model_version="model@abc",
        prompt_version="post-simple-1",
        attrs={"author_id": "a1", "format": "text"},
        event_time_ms=100,
        prompted_at_ms=200,
        embedded_at_ms=300,
    )
    assert np.array_equal(update.vector(), vector)


def test_member_update() -> None:
    update = embedding_update(
        request(entity="member", entity_id="m1", attrs={}), np.ones(5, np.float32), "m", 1
    )
    assert (update.entity, update.entity_id, update.dim) == ("member", "m1", 5)


def test_refuses_a_delete_request() -> None:
    with pytest.raises(ValueError, match="only upserts have embeddings; got delete for p1"):
        embedding_update(request(op="delete", text=""), np.ones(3, np.float32), "m", 1)
