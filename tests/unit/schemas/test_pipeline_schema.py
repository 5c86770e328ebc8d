"""``schemas.pipeline``: prompt requests and embedding updates between feedline's stages."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from schemas import EmbeddingUpdate, MemberEngagement, PromptRequest, decode, encode


def update(vector: np.ndarray, **overrides: Any) -> EmbeddingUpdate:
    fields: dict[str, Any] = {
        "entity": "post",
        "entity_id": "p1",
        "version": 1,
        "dim": int(vector.shape[0]),
        "vector_b64": EmbeddingUpdate.encode_vector(vector),
        "model_version": "m@1",
        "prompt_version": "post-simple-1",
        "attrs": {"author_id": "a1", "n": 3, "f": 0.5, "b": True, "none": None},
        "event_time_ms": 10,
        "prompted_at_ms": 11,
        "embedded_at_ms": 12,
    }
    return EmbeddingUpdate(**{**fields, **overrides})


def test_vector_round_trips_exactly_as_float32() -> None:
    rng = np.random.default_rng(7)
    vector = rng.standard_normal(384).astype(np.float32)
    got = update(vector).vector()
    assert got.dtype == np.float32
    assert got.shape == (384,)
    assert np.array_equal(got, vector)


def test_special_float_values_round_trip_bit_exact() -> None:
    vector = np.array([0.0, -0.0, 1e-45, 3.4e38, np.inf, -np.inf], dtype=np.float32)
    got = update(vector).vector()
    assert got.tobytes() == vector.tobytes()


def test_encode_vector_is_little_endian_float32_base64() -> None:
    encoded = EmbeddingUpdate.encode_vector(np.array([1.0, -2.0], dtype=np.float64))
    assert base64.b64decode(encoded) == bytes.fromhex("0000803f000000c0")


def test_float64_input_is_stored_as_float32() -> None:
    vector = np.array([0.1, 0.2, 0.3])
    assert np.array_equal(update(vector).vector(), vector.astype(np.float32))


def test_embedding_update_survives_the_wire() -> None:
    original = update(np.arange(8, dtype=np.float32))
    again = decode(EmbeddingUpdate, encode(original))
    assert again == original
    assert np.array_equal(again.vector(), np.arange(8, dtype=np.float32))
    assert again.attrs == {"author_id": "a1", "n": 3, "f": 0.5, "b": True, "none": None}


@pytest.mark.parametrize(
    ("field", "value"), [("version", 0), ("dim", 0), ("dim", 65_537), ("entity", "group")]
)
def test_embedding_update_bounds(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        update(np.ones(2, dtype=np.float32), **{field: value})


def prompt(**overrides: Any) -> PromptRequest:
    fields: dict[str, Any] = {
        "entity": "member",
        "entity_id": "m1",
        "version": 1,
        "prompt_version": "member-simple-1",
        "event_time_ms": 1,
        "prompted_at_ms": 2,
    }
    return PromptRequest(**{**fields, **overrides})


def test_prompt_request_defaults() -> None:
    request = prompt()
    assert (request.op, request.text, request.attrs, request.schema_version) == (
        "upsert",
        "",
        {},
        1,
    )


def test_prompt_request_version_starts_at_one() -> None:
    with pytest.raises(ValidationError, match="version"):
        prompt(version=0)


def test_prompt_request_rejects_unknown_operation() -> None:
    with pytest.raises(ValidationError, match="op"):
        prompt(op="merge")


def test_member_engagement_round_trip_with_unknown_post() -> None:
    joined = MemberEngagement(member_id="m1", post_id="p9", action="share", ts_ms=3)
    again = decode(MemberEngagement, encode(joined), key=b"m1", key_field="member_id")
    assert again == joined
    assert again.post_summary is None
