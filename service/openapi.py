"""The OpenAPI document states what the service enforces: the configured limits and the
"exactly one of" rule that pydantic checks in code but cannot express in a field.

The limits are settings (``FEEDLINE_SERVICE_MAX_K`` and the like), so they are written into
the document when the app is built, from the settings it serves with. A value over a limit
still gets the status the route documents for it (413 for a list or text too long, 422 for
``k``), now with the limit in the schema too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from models.gr.config import TASKS
from service.ranker_settings import RankerSettings
from service.settings import ServiceSettings

Schema = dict[str, Any]
OPENAPI_FILE = Path(__file__).with_name("openapi.json")
"""The committed document (default settings), for client generators; a test keeps it current
(``feedline schemas export`` rewrites it)."""


def render_openapi(app: FastAPI) -> str:
    """``app``'s OpenAPI document as the committed file holds it."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def state_limits(app: FastAPI, settings: ServiceSettings, ranker: RankerSettings) -> None:
    """Make ``app.openapi()`` carry ``settings``' and ``ranker``'s limits and the one-of rule
    of ``RetrieveRequest``."""
    build = app.openapi

    def openapi() -> Schema:
        if app.openapi_schema is None:
            spec = build()
            _add_limits(spec, settings, ranker)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_limits(spec: Schema, settings: ServiceSettings, ranker: RankerSettings) -> None:
    feed = spec["paths"]["/v1/members/{member_id}/feed"]["get"]
    for parameter in feed["parameters"]:
        if parameter["name"] == "k":
            parameter["schema"]["maximum"] = settings.max_k
        if parameter["name"] == "exclude":
            _array_of(parameter["schema"])["maxItems"] = settings.max_excluded_posts
    schemas = spec["components"]["schemas"]
    retrieve = schemas["RetrieveRequest"]
    retrieve["properties"]["k"]["maximum"] = settings.max_k
    _string_of(retrieve["properties"]["text"])["maxLength"] = settings.max_text_chars
    retrieve["oneOf"] = [  # absent or null is "not given", as in the model's validator
        {
            "required": ["member_id"],
            "properties": {"member_id": {"type": "string"}, "text": {"type": "null"}},
        },
        {
            "required": ["text"],
            "properties": {"text": {"type": "string"}, "member_id": {"type": "null"}},
        },
    ]
    schemas["SearchFilters"]["properties"]["exclude_post_ids"]["maxItems"] = (
        settings.max_excluded_posts
    )
    rank = schemas["RankRequest"]["properties"]
    rank["post_ids"]["maxItems"] = ranker.max_candidates
    # every checkpoint's tasks are among TASKS; one trained on fewer answers 422 for the rest
    _object_of(rank["task_weights"])["propertyNames"] = {"enum": list(TASKS)}


def _array_of(schema: Schema) -> Schema:
    """The array alternative of an optional list's schema (``anyOf: [array, null]``)."""
    return next(s for s in schema.get("anyOf", [schema]) if s.get("type") == "array")


def _object_of(schema: Schema) -> Schema:
    """The object alternative of an optional mapping's schema."""
    return next(s for s in schema.get("anyOf", [schema]) if s.get("type") == "object")


def _string_of(schema: Schema) -> Schema:
    """The string alternative of an optional string's schema."""
    return next(s for s in schema.get("anyOf", [schema]) if s.get("type") == "string")
