"""The OpenAPI document is the query API's contract: what each route returns, the limits it
enforces, the one-of rule, the media types; and the committed copy is current."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from service.app import build_api
from service.openapi import OPENAPI_FILE, render_openapi
from service.ranker_settings import RankerSettings
from service.settings import ServiceSettings

ERROR_REF = "#/components/schemas/ErrorBody"
DOCUMENTED = {
    ("/healthz", "get"): {"200", "503"},
    ("/readyz", "get"): {"200", "503"},
    ("/v1/members/{member_id}/feed", "get"): {"200", "404", "413", "422", "503"},
    ("/v1/retrieve", "post"): {"200", "400", "404", "413", "422", "503"},
    ("/v1/posts/{post_id}", "get"): {"200", "404", "422"},
    ("/v1/rank", "post"): {"200", "400", "413", "422", "503"},
    ("/v1/admin/rollout", "post"): {"202", "400", "409", "422", "503"},
    ("/v1/admin/rollout", "get"): {"200", "503"},
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return build_api().openapi()


def test_the_committed_document_is_current() -> None:
    assert OPENAPI_FILE.read_text() == render_openapi(build_api()), (
        "service/openapi.json is stale: run `feedline schemas export`"
    )


def test_every_route_declares_its_error_codes_with_the_error_body(spec: dict[str, Any]) -> None:
    for (path, method), codes in DOCUMENTED.items():
        responses = spec["paths"][path][method]["responses"]
        assert set(responses) == codes, (path, method)
        for code in codes - {"200", "202"}:
            body = responses[code]["content"]["application/json"]["schema"]
            assert body == {"$ref": ERROR_REF}, (path, method, code)


def test_metrics_are_declared_as_text(spec: dict[str, Any]) -> None:
    content = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


def test_the_limits_are_the_configured_ones() -> None:
    settings = ServiceSettings(max_k=50, max_text_chars=300, max_excluded_posts=7)
    spec = build_api(None, settings, RankerSettings(max_candidates=99)).openapi()
    feed = spec["paths"]["/v1/members/{member_id}/feed"]["get"]["parameters"]
    k = next(p for p in feed if p["name"] == "k")
    assert k["schema"]["maximum"] == 50
    schemas = spec["components"]["schemas"]
    retrieve = schemas["RetrieveRequest"]["properties"]
    assert retrieve["k"]["maximum"] == 50
    assert next(s for s in retrieve["text"]["anyOf"] if s["type"] == "string")["maxLength"] == 300
    assert schemas["SearchFilters"]["properties"]["exclude_post_ids"]["maxItems"] == 7
    assert schemas["RankRequest"]["properties"]["post_ids"]["maxItems"] == 99


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"member_id": "m1"}, True),
        ({"text": "kafka"}, True),
        ({"member_id": "m1", "text": None}, True),
        ({"member_id": "m1", "text": "kafka"}, False),
        ({}, False),
        ({"member_id": None, "text": None}, False),
    ],
)
def test_exactly_one_of_member_id_or_text_is_in_the_schema(
    spec: dict[str, Any], body: dict[str, Any], valid: bool
) -> None:
    one_of = {"oneOf": spec["components"]["schemas"]["RetrieveRequest"]["oneOf"]}
    assert jsonschema.Draft202012Validator(one_of).is_valid(body) == valid


async def test_method_not_allowed_names_the_allowed_methods() -> None:
    transport = httpx.ASGITransport(app=build_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        answer = await client.get("/v1/retrieve")
        shared = await client.delete("/v1/admin/rollout")  # a path two routes serve
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["error_type"] == "http"
    assert shared.status_code == 405
    assert shared.headers["allow"] == "GET, POST"
