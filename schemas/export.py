"""Export every wire schema as JSON Schema so producers in any language can validate.

The files live in ``schemas/json/`` and are committed; a test fails when they drift from the
models. Regenerate with ``feedline schemas export``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.events import Engagement, MemberProfile, PostCreated, PostDeleted
from schemas.pipeline import EmbeddingUpdate, MemberEngagement, PromptRequest

WIRE_MODELS: tuple[type[BaseModel], ...] = (
    PostCreated,
    PostDeleted,
    Engagement,
    MemberProfile,
    MemberEngagement,
    PromptRequest,
    EmbeddingUpdate,
)
JSON_SCHEMA_DIR = Path(__file__).with_name("json")


def json_schema(model: type[BaseModel]) -> dict[str, object]:
    """The JSON Schema (draft 2020-12) of one model, with a stable ``$id``."""
    schema = model.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://feedline.dev/schemas/{model.__name__}.v1.schema.json",
        **schema,
    }


def render(model: type[BaseModel]) -> str:
    """The exact file content written for ``model``."""
    return json.dumps(json_schema(model), indent=2, sort_keys=True) + "\n"


def export_json_schemas(directory: Path = JSON_SCHEMA_DIR) -> list[Path]:
    """Write ``<Model>.schema.json`` for every wire model; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in WIRE_MODELS:
        path = directory / f"{model.__name__}.schema.json"
        path.write_text(render(model))
        written.append(path)
    return written
