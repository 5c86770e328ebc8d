"""Records that feedline's own stages exchange: prompt requests and embedding updates.

Every record carries ``(entity, entity_id, version)``: versions grow per entity, and a consumer
applies a record only when its version is newer than what it holds, so replays change nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from schemas.events import Action, WireModel
from schemas.fields import EntityId, EpochMs, Label, Text

Entity = Literal["post", "member"]
Operation = Literal["upsert", "delete"]
AttrValue = Label | int | float | bool | None


class MemberEngagement(WireModel):
    """An engagement joined with a summary of its post, re-keyed by member.

    Written by the post side of the prompt processor (which owns the post's features) to the
    ``engagements.by-member`` repartition topic, read by the member side.
    """

    schema_version: Literal[1] = 1
    member_id: EntityId
    post_id: EntityId
    action: Action
    ts_ms: EpochMs
    dwell_ms: int | None = None
    device: Label | None = None
    post_author_id: EntityId | None = None
    post_summary: Text | None = Field(None, description="None when the post is not known yet")


class PromptRequest(WireModel):
    """A rendered prompt to embed (``op="upsert"``), or the instruction to drop an entity."""

    schema_version: Literal[1] = 1
    entity: Entity
    entity_id: EntityId
    op: Operation = "upsert"
    version: int = Field(ge=1, description="grows by one per change of the entity")
    text: Text = ""
    prompt_version: Label
    attrs: dict[str, AttrValue] = Field(
        default_factory=dict, description="filterable features, e.g. author_id, format"
    )
    event_time_ms: EpochMs = Field(description="time of the source event that caused this")
    prompted_at_ms: EpochMs = Field(description="when the prompt was rendered")


class EmbeddingUpdate(WireModel):
    """The embedding of one entity at one version. Deletes travel as Kafka tombstones.

    ``text`` is the prompt the vector was computed from: the compacted ``embeddings.*`` topics
    thereby hold the latest prompt of every live entity, which is what a model rollout
    (``service.feeds.rollout``) re-embeds.

    ``vector_b64`` is the little-endian float32 vector, base64-encoded (exact and 4x smaller
    than a JSON list); use ``vector()`` and ``from_vector()`` rather than touching it.
    """

    schema_version: Literal[1] = 1
    entity: Entity
    entity_id: EntityId
    version: int = Field(ge=1)
    dim: int = Field(ge=1, le=65_536)
    vector_b64: str
    model_version: Label
    prompt_version: Label
    attrs: dict[str, AttrValue] = Field(default_factory=dict)
    event_time_ms: EpochMs
    prompted_at_ms: EpochMs
    embedded_at_ms: EpochMs
    text: Text | None = Field(
        None,
        description="the prompt that was embedded; kept in the compacted topic so a model "
        "rollout can re-embed every live entity without replaying history (absent in "
        "records written before this field existed)",
    )

    @model_validator(mode="after")
    def _vector_matches_dim(self) -> EmbeddingUpdate:
        try:
            size = len(base64.b64decode(self.vector_b64, validate=True))
        except binascii.Error as error:
            raise ValueError(f"vector_b64 is not base64: {error}") from None
        if size != 4 * self.dim:
            raise ValueError(f"vector_b64 holds {size} bytes; dim {self.dim} needs {4 * self.dim}")
        return self

    def vector(self) -> np.ndarray:
        """The embedding as a float32 array of shape ``(dim,)``."""
        return np.frombuffer(base64.b64decode(self.vector_b64), dtype="<f4").astype(np.float32)

    def with_vector(
        self, vector: np.ndarray, model_version: str, embedded_at_ms: int
    ) -> EmbeddingUpdate:
        """This update re-embedded by another model: same entity, version, prompt, attributes
        and event times; ``vector`` (1-D) replaces the vector, dimension and model version."""
        return self.model_copy(
            update={
                "dim": int(vector.shape[0]),
                "vector_b64": self.encode_vector(vector),
                "model_version": model_version,
                "embedded_at_ms": embedded_at_ms,
            }
        )

    @staticmethod
    def encode_vector(vector: np.ndarray) -> str:
        """Base64 of the little-endian float32 bytes of a 1-D vector."""
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode()
