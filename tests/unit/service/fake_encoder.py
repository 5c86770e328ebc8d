"""A stand-in text encoder for service tests (no model load, vectors fixed per text) and the
embedding updates those tests index."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas import EmbeddingUpdate


@dataclass
class FakeEncoder:
    """Deterministic unit vectors per text; thread-safe."""

    model_version: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([unit(f"{self.model_version}/{t}", self.dim) for t in texts])


def unit(seed: str, dim: int) -> np.ndarray:
    """A unit vector derived from ``seed``."""
    vector = np.random.default_rng(zlib.crc32(seed.encode())).standard_normal(dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def update(
    entity_id: str, model_version: str, dim: int, vector: np.ndarray | None = None
) -> EmbeddingUpdate:
    """Version 1 of ``entity_id``: a post when its id starts with ``a`` or ``b``, else a
    member; its vector is ``vector``, else ``unit(entity_id, dim)``."""
    return EmbeddingUpdate(
        entity="post" if entity_id[0] in "ab" else "member",
        entity_id=entity_id,
        version=1,
        dim=dim,
        vector_b64=EmbeddingUpdate.encode_vector(
            unit(entity_id, dim) if vector is None else vector
        ),
        model_version=model_version,
        prompt_version="p1",
        attrs={"author_id": "someone", "format": "text"},
        event_time_ms=1,
        prompted_at_ms=1,
        embedded_at_ms=1,
        text=f"prompt of {entity_id}",
    )
