"""Building embedding updates from prompt requests and the vectors computed for them."""

from __future__ import annotations

import numpy as np

from schemas import EmbeddingUpdate, PromptRequest


def embedding_update(
    request: PromptRequest, vector: np.ndarray, model_version: str, now_ms: int
) -> EmbeddingUpdate:
    """The update that makes ``request``'s entity, at its version, searchable as ``vector``."""
    if request.op != "upsert":
        raise ValueError(f"only upserts have embeddings; got {request.op} for {request.entity_id}")
    return EmbeddingUpdate(
        entity=request.entity,
        entity_id=request.entity_id,
        version=request.version,
        dim=int(vector.shape[0]),
        vector_b64=EmbeddingUpdate.encode_vector(vector),
        model_version=model_version,
        prompt_version=request.prompt_version,
        attrs=request.attrs,
        event_time_ms=request.event_time_ms,
        prompted_at_ms=request.prompted_at_ms,
        embedded_at_ms=now_ms,
    )
