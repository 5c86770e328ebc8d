"""``schemas.engagement_table``: engagements ⇄ Arrow/Parquet, and what a bad file is told."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import Engagement, SchemaError
from schemas.engagement_table import (
    ENGAGEMENTS_SCHEMA,
    EngagementTableError,
    engagements_to_table,
    read_engagements,
)


def engagement(i: int, **overrides: object) -> Engagement:
    fields: dict[str, object] = {
        "schema_version": 1, "member_id": f"m{i % 3}", "post_id": f"p{i}", "action": "click",
        "ts_ms": 1_700_000_000_000 + i, "dwell_ms": None, "device": None, **overrides,
    }  # fmt: skip
    return Engagement.model_validate(fields)


EVENTS = [
    engagement(0),
    engagement(1, action="long_dwell", dwell_ms=42_000, device="ios"),
    engagement(2, device="web"),
]


def written(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "engagements.parquet"
    pq.write_table(table, path)
    return path


def test_round_trip_keeps_every_field_in_order(tmp_path: Path) -> None:
    table = engagements_to_table(EVENTS)
    assert table.schema.equals(ENGAGEMENTS_SCHEMA)
    back = read_engagements(written(tmp_path, table))
    assert back.schema.equals(ENGAGEMENTS_SCHEMA) and back.equals(table)
    rows = back.to_pylist()
    assert [Engagement.model_validate({"schema_version": 1, **r}) for r in rows] == EVENTS


def test_empty_table_has_the_schema(tmp_path: Path) -> None:
    back = read_engagements(written(tmp_path, engagements_to_table([])))
    assert back.num_rows == 0 and back.schema.equals(ENGAGEMENTS_SCHEMA)


def test_foreign_files_with_compatible_types_are_conformed(tmp_path: Path) -> None:
    foreign = pa.table(
        {
            "ts_ms": pa.array([5, 6], pa.int32()),
            "member_id": pa.array(["m1", "m2"]).dictionary_encode(),
            "post_id": pa.array(["p1", "p2"], pa.large_string()),
            "action": ["like", "skip"],
            "device": [None, None],  # all-null: Arrow type null
            "dwell_ms": pa.array([None, 7], pa.uint16()),
            "country": ["de", "fr"],  # extra columns are dropped
        }
    )
    back = read_engagements(written(tmp_path, foreign))
    assert back.schema.equals(ENGAGEMENTS_SCHEMA)
    assert back.column("dwell_ms").to_pylist() == [None, 7]


def test_missing_and_mistyped_columns_are_named(tmp_path: Path) -> None:
    table = engagements_to_table(EVENTS).drop_columns(["post_id"])
    table = table.set_column(4, "dwell_ms", pa.array([None, 4.5, None]))  # pandas float64
    with pytest.raises(EngagementTableError) as caught:
        read_engagements(written(tmp_path, table))
    message = str(caught.value)
    assert "missing columns ['post_id']" in message
    assert "dwell_ms: expected int64, got double" in message and "Int64" in message
    assert isinstance(caught.value, SchemaError)


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        ("member_id", pa.array(["m1", None, "m3"]), "nulls {'member_id': 1}"),
        ("ts_ms", pa.array([None, None, 3], pa.int64()), "nulls {'ts_ms': 2}"),
        ("action", pa.array(["click", "poke", "poke"]), "unknown actions ['poke']"),
        ("ts_ms", pa.array([1, 2, 2**63], pa.uint64()), "column ts_ms"),
        ("device", pa.array([1, 2, 3]), "device: expected string, got int64"),
    ],
)
def test_bad_values_are_refused(
    tmp_path: Path, column: str, values: pa.Array, expected: str
) -> None:
    table = engagements_to_table(EVENTS)
    table = table.set_column(table.column_names.index(column), column, values)
    with pytest.raises(EngagementTableError) as caught:
        read_engagements(written(tmp_path, table))
    assert expected in str(caught.value)


def test_unreadable_files_name_the_path(tmp_path: Path) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    for path in (junk, tmp_path / "absent.parquet"):
        with pytest.raises(EngagementTableError, match="not a readable Parquet file"):
            read_engagements(path)
