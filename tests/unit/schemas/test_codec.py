"""``schemas.codec``: bytes ⇄ records, and the reasons bad records are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas import (
    InvalidRecord,
    MemberProfile,
    PostCreated,
    PostDeleted,
    decode,
    encode,
)


def post_doc(**overrides: Any) -> dict[str, Any]:
    """A valid PostCreated document; ``overrides`` replace or add fields."""
    doc: dict[str, Any] = {
        "schema_version": 1,
        "post_id": "p1",
        "author_id": "a1",
        "created_at_ms": 1_700_000_000_000,
        "format": "text",
        "text": "hello feed",
    }
    doc.update(overrides)
    return doc


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def refusal(model: type, data: bytes | None, **kwargs: Any) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        decode(model, data, **kwargs)
    return caught.value


# --- the good path -------------------------------------------------------------------------


def test_decode_returns_the_validated_record() -> None:
    record = decode(PostCreated, raw(post_doc(author_followers=12)))
    assert record == PostCreated(
        schema_version=1,
        post_id="p1",
        author_id="a1",
        created_at_ms=1_700_000_000_000,
        format="text",
        text="hello feed",
        author_followers=12,
    )


def test_encode_then_decode_round_trips_every_field() -> None:
    record = decode(PostCreated, raw(post_doc(author_headline="h", industry="i", language="en")))
    assert decode(PostCreated, encode(record)) == record


def test_encode_keeps_none_fields() -> None:
    encoded = json.loads(encode(decode(PostCreated, raw(post_doc()))))
    assert encoded["author_headline"] is None
    assert encoded["author_followers"] is None


def test_matching_key_is_accepted() -> None:
    record = decode(PostCreated, raw(post_doc()), key=b"p1", key_field="post_id")
    assert record.post_id == "p1"


def test_unknown_extra_fields_are_ignored() -> None:
    record = decode(PostCreated, raw(post_doc(reactions={"x": 1}, shiny_new_field=[1, 2])))
    assert record.post_id == "p1"
    assert "shiny_new_field" not in record.model_dump()


# --- the reasons ---------------------------------------------------------------------------


def test_malformed_json_is_refused() -> None:
    error = refusal(PostCreated, b'{"post_id": "p1",')
    assert error.reason == "malformed_json"
    assert "not UTF-8 JSON" in str(error)


def test_invalid_utf8_is_refused_as_malformed() -> None:
    data = b'{"schema_version": 1, "text": "\xff\xfe bad"}'
    error = refusal(PostCreated, data)
    assert error.reason == "malformed_json"
    assert "UTF-8" in str(error)


def test_null_value_is_refused_as_malformed() -> None:
    error = refusal(PostCreated, None)
    assert error.reason == "malformed_json"
    assert "no value" in str(error)


@pytest.mark.parametrize(
    ("data", "kind"),
    [(b"null", "NoneType"), (b'"a string"', "str"), (b"[1, 2]", "list"), (b"42", "int")],
)
def test_json_that_is_not_an_object_is_refused(data: bytes, kind: str) -> None:
    error = refusal(PostCreated, data)
    assert error.reason == "not_an_object"
    assert str(error) == f"value is JSON {kind}, expected an object"


def test_schema_invalid_names_the_field_and_the_problem() -> None:
    error = refusal(PostCreated, raw(post_doc(format="hologram")))
    assert error.reason == "schema_invalid"
    assert str(error).startswith("PostCreated: format: Input should be")
    assert "'text'" in str(error)


def test_missing_required_field_is_named() -> None:
    doc = post_doc()
    del doc["author_id"]
    error = refusal(PostCreated, raw(doc))
    assert error.reason == "schema_invalid"
    assert str(error) == "PostCreated: author_id: Field required"


def test_missing_schema_version_is_schema_invalid() -> None:
    doc = post_doc()
    del doc["schema_version"]
    error = refusal(PostCreated, raw(doc))
    assert error.reason == "schema_invalid"
    assert "schema_version: Field required" in str(error)


def test_nested_field_errors_name_the_path() -> None:
    doc = {
        "schema_version": 1,
        "member_id": "m1",
        "updated_at_ms": 1,
        "positions": [{"title": "ok"}, {"company": "no title"}],
    }
    error = refusal(MemberProfile, raw(doc))
    assert error.reason == "schema_invalid"
    assert str(error) == "MemberProfile: positions.1.title: Field required"


def test_many_errors_are_capped_with_a_count() -> None:
    error = refusal(PostCreated, raw({"schema_version": 1}))
    # post_id, author_id, created_at_ms, format, text are all missing: 5 shown, none left.
    assert str(error).count("Field required") == 5
    bad = post_doc(post_id="", author_id="", created_at_ms=-1, format="x", text=1)
    bad["author_followers"] = -5
    error = refusal(PostCreated, raw(bad))
    assert str(error).endswith("(+1 more)")


@pytest.mark.parametrize("version", ["1", "two", True, 1.0])
def test_non_integer_schema_versions_are_invalid(version: object) -> None:
    error = refusal(PostCreated, raw(post_doc(schema_version=version)))
    assert error.reason == "schema_invalid"
    assert str(error) == f"PostCreated: schema_version: must be an integer, got {version!r}"


@pytest.mark.parametrize("version", [2, 0])
def test_other_schema_versions_are_unsupported(version: object) -> None:
    error = refusal(PostCreated, raw(post_doc(schema_version=version)))
    assert error.reason == "unsupported_schema_version"
    assert str(error) == (
        f"PostCreated: schema_version {version!r} is not supported (this build reads 1)"
    )


def test_null_schema_version_is_schema_invalid() -> None:
    error = refusal(PostCreated, raw(post_doc(schema_version=None)))
    assert error.reason == "schema_invalid"
    assert "schema_version" in str(error)


@pytest.mark.parametrize("key", [b"p2", None, b""])
def test_key_must_equal_the_key_field(key: bytes | None) -> None:
    error = refusal(PostCreated, raw(post_doc()), key=key, key_field="post_id")
    assert error.reason == "key_mismatch"
    assert f"Kafka key {key!r} must equal post_id 'p1'" in str(error)


def test_key_check_applies_after_validation() -> None:
    # An invalid record is reported as invalid even when its key is also wrong.
    error = refusal(PostCreated, raw(post_doc(format="x")), key=b"zz", key_field="post_id")
    assert error.reason == "schema_invalid"


def test_non_utf8_key_is_a_mismatch_not_a_crash() -> None:
    error = refusal(
        PostDeleted,
        raw({"schema_version": 1, "post_id": "p1", "deleted_at_ms": 5}),
        key=b"\xff",
        key_field="post_id",
    )
    assert error.reason == "key_mismatch"


# --- hostile input -------------------------------------------------------------------------


def test_one_megabyte_text_is_accepted_unchanged() -> None:
    text = "word " * 200_000
    record = decode(PostCreated, raw(post_doc(text=text)))
    assert record.text == text


def test_moderately_nested_unknown_field_is_ignored() -> None:
    data = raw(post_doc())[:-1] + b', "x": ' + b"[" * 500 + b"]" * 500 + b"}"
    assert decode(PostCreated, data).post_id == "p1"


def test_deeply_nested_json_is_refused_as_malformed() -> None:
    data = raw(post_doc())[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = refusal(PostCreated, data)
    assert error.reason == "malformed_json"
    assert str(error) == "value is JSON nested too deeply"


def test_lone_surrogate_in_text_is_refused_or_round_trips() -> None:
    data = raw(post_doc())[:-1] + b', "text": "a\\ud800b"}'
    try:
        record = decode(PostCreated, data)
    except InvalidRecord as error:
        assert error.reason == "schema_invalid"
        return
    assert decode(PostCreated, encode(record)) == record


def test_lone_surrogate_in_a_label_is_refused() -> None:
    data = raw(post_doc())[:-1] + b', "industry": "\\ud800"}'
    error = refusal(PostCreated, data)
    assert error.reason == "schema_invalid"
    assert str(error).startswith("PostCreated: industry:")


@pytest.mark.parametrize(
    ("field", "value"),
    [("created_at_ms", "1700000000000"), ("author_followers", 1.5), ("schema_version", True),
     ("text", 42)],
)  # fmt: skip
def test_types_are_strict_like_the_exported_json_schema(field: str, value: object) -> None:
    error = refusal(PostCreated, raw(post_doc(**{field: value})))
    assert error.reason == "schema_invalid" and field in str(error)
