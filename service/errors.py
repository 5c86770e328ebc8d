"""API errors and the handlers that render every error as ``{error, error_type}``.

Status codes follow Hugging Face TEI: 404 unknown entity, 413 too large, 422 invalid,
503 not ready; and 409 for an admin action that conflicts with one in progress.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.errors import FeedlineError

ErrorType = Literal[
    "not_found",
    "payload_too_large",
    "validation",
    "not_ready",
    "ranker_unavailable",
    "conflict",
    "http",
]


class ApiError(FeedlineError):
    """An error with an HTTP status, shown to the client as ``{error, error_type}``."""

    def __init__(self, status: int, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: str = Field(description="what was wrong, in words a client can act on")
    error_type: ErrorType


ERROR_MEANINGS: dict[int, str] = {
    400: "the request body could not be read as JSON",
    404: "unknown member or post (or path)",
    405: "method not allowed; the Allow header lists the methods that are",
    409: "conflicts with a model rollout in progress",
    413: "a list or text longer than the service's limit (the message names it)",
    422: "the request does not validate (the message says where)",
    503: "not ready: the index is still catching up, or the GR ranker is unavailable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error codes a route returns, each with ``ErrorBody``."""
    return {code: {"model": ErrorBody, "description": ERROR_MEANINGS[code]} for code in codes}


def not_ready() -> ApiError:
    """503: the index has not caught up with its input topics yet."""
    return ApiError(503, "not_ready", "the index is still catching up with its input topics")


def error_body(message: str, error_type: str) -> dict[str, str]:
    """The JSON body of every error response."""
    return {"error": message, "error_type": error_type}


def install_error_handlers(app: FastAPI) -> None:
    """Render API, validation and routing errors in the one error shape."""

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(str(error), error.error_type), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
        )
        return JSONResponse(error_body(problems, "validation"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if error.status_code == 404 else "http"
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        return JSONResponse(
            error_body(str(error.detail), kind), status_code=error.status_code, headers=headers
        )


def _allowed_methods(request: Request) -> str:
    """The methods the OpenAPI document lists for the request's path. Starlette's 405 names
    only the methods of the first route whose path matched, which is wrong for a path that two
    routes share (``GET`` and ``POST /v1/admin/rollout``)."""
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), request.url.path):
            return ", ".join(sorted(method.upper() for method in operations))
    return ""
