"""Bytes on the wire ⇄ validated records, with errors that say exactly what was wrong."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.errors import InvalidRecord

M = TypeVar("M", bound=BaseModel)

_MAX_ERRORS_REPORTED = 5


def decode(
    model: type[M], raw: bytes | None, *, key: bytes | None = None, key_field: str | None = None
) -> M:
    """Parse ``raw`` JSON bytes as ``model``.

    When ``key_field`` is given the Kafka ``key`` must equal that field of the record, since a
    mismatched key breaks co-partitioning (the record would land on the wrong worker).

    Raises:
        InvalidRecord: with ``reason`` one of malformed_json, not_an_object, schema_invalid,
            unsupported_schema_version, key_mismatch.
    """
    document = _parse_json(raw)
    version = document.get("schema_version")
    if "schema_version" in model.model_fields and version is not None and type(version) is not int:
        raise InvalidRecord(
            "schema_invalid",
            f"{model.__name__}: schema_version: must be an integer, got {version!r}",
        )
    if "schema_version" in model.model_fields and version is not None and version != 1:
        raise InvalidRecord(
            "unsupported_schema_version",
            f"{model.__name__}: schema_version {version!r} is not supported (this build reads 1)",
        )
    try:
        record = model.model_validate(document)
    except ValidationError as error:
        raise InvalidRecord("schema_invalid", describe_validation_error(model, error)) from None
    if key_field is not None:
        _check_key(model, record, key, key_field)
    return record


def encode(record: BaseModel) -> bytes:
    """Compact UTF-8 JSON of a record, dropping nothing (``None`` fields included): the bytes
    of ``model_dump_json()``, straight from pydantic's serializer (no str round trip)."""
    return record.__pydantic_serializer__.to_json(record)


def describe_validation_error(model: type[BaseModel], error: ValidationError) -> str:
    """One line naming each bad field and why, e.g. ``PostCreated: format: Input should be…``."""
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
        for e in error.errors()[:_MAX_ERRORS_REPORTED]
    ]
    more = error.error_count() - len(problems)
    suffix = f" (+{more} more)" if more > 0 else ""
    return f"{model.__name__}: " + "; ".join(problems) + suffix


def _parse_json(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise InvalidRecord("malformed_json", "the record has no value (null); expected JSON")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRecord("malformed_json", f"value is not UTF-8 JSON: {error}") from None
    except RecursionError:  # hostile nesting must not crash a worker (a poison pill)
        raise InvalidRecord("malformed_json", "value is JSON nested too deeply") from None
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise InvalidRecord("not_an_object", f"value is JSON {kind}, expected an object")
    return document


def _check_key(model: type[BaseModel], record: BaseModel, key: bytes | None, field: str) -> None:
    expected = str(getattr(record, field))
    if key is None or key.decode("utf-8", errors="replace") != expected:
        raise InvalidRecord(
            "key_mismatch",
            f"{model.__name__}: Kafka key {key!r} must equal {field} {expected!r} "
            "so the record reaches the partition that owns it",
        )
