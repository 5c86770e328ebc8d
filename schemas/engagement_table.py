"""Engagements as an Arrow table: the columns ranker training reads, from Kafka or a user's logs.

``feedline export engagements`` writes this schema as Parquet; a file from anywhere else (a
warehouse dump, pandas, polars) can be read with ``read_engagements`` as long as it has these
columns. Extra columns are dropped, ``large_string`` and dictionary-encoded strings and any
integer width are accepted and cast.

Example::

    table = engagements_to_table(events)       # Iterable[Engagement] -> pa.Table
    pq.write_table(table, "engagements.parquet")
    read_engagements("engagements.parquet")    # the same table, schema checked
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import get_args

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.errors import SchemaError
from schemas.events import Action, Engagement

ENGAGEMENTS_SCHEMA = pa.schema(
    [
        pa.field("member_id", pa.string(), nullable=False),
        pa.field("post_id", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("ts_ms", pa.int64(), nullable=False),
        pa.field("device", pa.string()),
        pa.field("dwell_ms", pa.int64()),
    ]
)
"""One row per ``Engagement``; ``ts_ms`` is epoch milliseconds, ``device``/``dwell_ms`` may be
null. The fields and their meaning are those of ``schemas.events.Engagement``."""

ACTIONS: tuple[str, ...] = get_args(Action)


class EngagementTableError(SchemaError):
    """A table or file is not a valid engagements table (missing/mistyped columns, nulls)."""


def engagements_to_table(events: Iterable[Engagement]) -> pa.Table:
    """A table with ``ENGAGEMENTS_SCHEMA``, one row per event in iteration order."""
    columns: dict[str, list[object]] = {name: [] for name in ENGAGEMENTS_SCHEMA.names}
    for event in events:
        for name, values in columns.items():
            values.append(getattr(event, name))
    return pa.Table.from_pydict(columns, schema=ENGAGEMENTS_SCHEMA)


def read_engagements(path: str | os.PathLike[str]) -> pa.Table:
    """Read a Parquet file of engagements as a table with exactly ``ENGAGEMENTS_SCHEMA``.

    Raises:
        EngagementTableError: the file is unreadable, a column is missing or has an
            incompatible type, a required column holds nulls, or an action is unknown.
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise EngagementTableError(f"{path}: not a readable Parquet file: {error}") from error
    return conform_engagements(table, str(path))


def conform_engagements(table: pa.Table, name: str = "table") -> pa.Table:
    """``table`` cast to ``ENGAGEMENTS_SCHEMA`` (extra columns dropped), or an error naming
    every missing or mistyped column; ``name`` says which input in the message."""
    missing = [f.name for f in ENGAGEMENTS_SCHEMA if f.name not in table.column_names]
    wrong = [
        f"{f.name}: expected {f.type}, got {table.schema.field(f.name).type}"
        for f in ENGAGEMENTS_SCHEMA
        if f.name not in missing and not _compatible(table.schema.field(f.name).type, f)
    ]
    if missing or wrong:
        raise EngagementTableError(
            f"{name}: not an engagements table (missing columns {missing}, wrong types "
            f"{wrong}); expected {_describe(ENGAGEMENTS_SCHEMA)}. From pandas, use the "
            "nullable 'Int64' dtype for dwell_ms (float64 is refused)"
        )
    nulls = {f.name: table.column(f.name).null_count for f in ENGAGEMENTS_SCHEMA if not f.nullable}
    if any(nulls.values()):
        found = {column: count for column, count in nulls.items() if count}
        raise EngagementTableError(f"{name}: required columns hold nulls {found}")
    conformed = pa.Table.from_arrays(
        [_cast(table.column(f.name), f, name) for f in ENGAGEMENTS_SCHEMA],
        schema=ENGAGEMENTS_SCHEMA,
    )
    _check_actions(conformed, name)
    return conformed


def _cast(column: pa.ChunkedArray, field: pa.Field, name: str) -> pa.ChunkedArray:
    try:
        return column.cast(field.type)
    except pa.ArrowInvalid as error:  # e.g. a uint64 beyond int64
        raise EngagementTableError(f"{name}: column {field.name}: {error}") from error


def _check_actions(table: pa.Table, name: str) -> None:
    unknown = pc.unique(
        pc.filter(table["action"], pc.invert(pc.is_in(table["action"], pa.array(ACTIONS))))
    )
    if len(unknown):
        raise EngagementTableError(
            f"{name}: unknown actions {unknown.to_pylist()[:5]}; known: {', '.join(ACTIONS)}"
        )


def _compatible(got: pa.DataType, field: pa.Field) -> bool:
    expected = field.type
    if pa.types.is_null(got):  # a column of only nulls, as pandas writes an all-None column
        return bool(field.nullable)
    if pa.types.is_dictionary(got):
        got = got.value_type
    if pa.types.is_string(expected):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    return pa.types.is_integer(got) if pa.types.is_integer(expected) else got.equals(expected)


def _describe(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {f.type}{'' if f.nullable else ' not null'}" for f in schema)
