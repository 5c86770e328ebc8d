"""``schemas.export``: committed JSON Schema files never drift from the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from schemas.export import JSON_SCHEMA_DIR, WIRE_MODELS, export_json_schemas, json_schema, render

GOOD: dict[str, dict[str, Any]] = {
    "PostCreated": {
        "schema_version": 1,
        "post_id": "p1",
        "author_id": "a1",
        "created_at_ms": 1,
        "format": "poll",
        "text": "t",
    },
    "PostDeleted": {"schema_version": 1, "post_id": "p1", "deleted_at_ms": 1},
    "Engagement": {
        "schema_version": 1,
        "member_id": "m1",
        "post_id": "p1",
        "action": "click",
        "ts_ms": 1,
    },
    "MemberProfile": {
        "schema_version": 1,
        "member_id": "m1",
        "updated_at_ms": 1,
        "positions": [{"title": "t"}],
        "education": [{"school": "s"}],
    },
    "MemberEngagement": {"member_id": "m1", "post_id": "p1", "action": "like", "ts_ms": 1},
    "PromptRequest": {
        "entity": "post",
        "entity_id": "p1",
        "version": 1,
        "prompt_version": "v",
        "event_time_ms": 1,
        "prompted_at_ms": 1,
    },
    "EmbeddingUpdate": {
        "entity": "post",
        "entity_id": "p1",
        "version": 1,
        "dim": 1,
        "vector_b64": "AACAPw==",
        "model_version": "m",
        "prompt_version": "v",
        "event_time_ms": 1,
        "prompted_at_ms": 1,
        "embedded_at_ms": 1,
    },
}
# One bad example per model: an id with a space breaks the pattern every model uses.
BAD_FIELD = {
    "PostCreated": "post_id",
    "PostDeleted": "post_id",
    "Engagement": "member_id",
    "MemberProfile": "member_id",
    "MemberEngagement": "member_id",
    "PromptRequest": "entity_id",
    "EmbeddingUpdate": "entity_id",
}

MODEL_IDS = [m.__name__ for m in WIRE_MODELS]


def test_every_wire_model_has_examples() -> None:
    assert set(GOOD) == set(MODEL_IDS) == set(BAD_FIELD)


@pytest.mark.parametrize("model", WIRE_MODELS, ids=MODEL_IDS)
def test_committed_schema_file_matches_the_model(model: type[BaseModel]) -> None:
    path = JSON_SCHEMA_DIR / f"{model.__name__}.schema.json"
    assert path.read_text() == render(model), (
        f"{path} is stale; regenerate with `feedline schemas export`"
    )


def test_no_stray_schema_files() -> None:
    committed = {p.name for p in JSON_SCHEMA_DIR.glob("*.schema.json")}
    assert committed == {f"{name}.schema.json" for name in MODEL_IDS}


@pytest.mark.parametrize("model", WIRE_MODELS, ids=MODEL_IDS)
def test_schema_header_and_fields(model: type[BaseModel]) -> None:
    schema = json_schema(model)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://feedline.dev/schemas/{model.__name__}.v1.schema.json"
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert set(properties) == set(model.model_fields)
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    assert set(schema.get("required", [])) == required  # type: ignore[arg-type]


def test_render_is_stable_sorted_json_with_newline() -> None:
    text = render(WIRE_MODELS[0])
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_export_writes_one_file_per_model(tmp_path: Path) -> None:
    written = export_json_schemas(tmp_path / "out")
    assert [p.name for p in written] == [f"{n}.schema.json" for n in MODEL_IDS]
    for model, path in zip(WIRE_MODELS, written, strict=True):
        assert path.read_text() == render(model)


@pytest.mark.parametrize("model", WIRE_MODELS, ids=MODEL_IDS)
def test_good_examples_validate_against_the_model(model: type[BaseModel]) -> None:
    model.model_validate(GOOD[model.__name__])


@pytest.mark.parametrize("model", WIRE_MODELS, ids=MODEL_IDS)
def test_exported_schema_accepts_good_and_rejects_bad(model: type[BaseModel]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((JSON_SCHEMA_DIR / f"{model.__name__}.schema.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    good = GOOD[model.__name__]
    assert list(validator.iter_errors(good)) == []
    bad = {**good, BAD_FIELD[model.__name__]: "has space"}
    errors = list(validator.iter_errors(bad))
    assert [list(e.path) for e in errors] == [[BAD_FIELD[model.__name__]]]
