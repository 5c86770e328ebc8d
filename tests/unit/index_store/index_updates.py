"""Embedding updates for index tests: deterministic unit vectors per entity and version."""

from __future__ import annotations

import time
import zlib
from typing import Any

import numpy as np

from schemas import EmbeddingUpdate, Entity

DIM = 16
MODEL = "test-model@1"


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    """A random unit vector, the same for the same seed."""
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def update(
    entity_id: str,
    version: int = 1,
    vector: np.ndarray | None = None,
    *,
    entity: Entity = "post",
    author: str | None = "a1",
    **overrides: Any,
) -> EmbeddingUpdate:
    """An update of ``entity_id`` at ``version`` (its vector derived from both unless given)."""
    vector = unit(zlib.crc32(entity_id.encode()) % 10_000 + version) if vector is None else vector
    fields: dict[str, Any] = {
        "entity": entity,
        "entity_id": entity_id,
        "version": version,
        "dim": int(vector.shape[0]),
        "vector_b64": EmbeddingUpdate.encode_vector(vector),
        "model_version": MODEL,
        "prompt_version": f"{entity}-simple-1",
        "attrs": {"author_id": author, "format": "text"} if entity == "post" else {},
        "event_time_ms": int(time.time() * 1000) - 2_000,
        "prompted_at_ms": 1,
        "embedded_at_ms": 1,
    }
    return EmbeddingUpdate(**{**fields, **overrides})
