"""Checks of the tables handed to a snapshot write: exact schemas, sane ids, file names."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from index_store.snapshots.errors import SnapshotError
from index_store.snapshots.layout import MANIFEST_FILE, TABLE_FILES


def conform(table: pa.Table, schema: pa.Schema, name: str) -> pa.Table:
    """``table`` with exactly ``schema`` (columns reordered), or a SnapshotError saying why."""
    got = {field.name: field for field in table.schema}
    missing = [field.name for field in schema if field.name not in got]
    extra = [field_name for field_name in got if schema.get_field_index(field_name) < 0]
    wrong = [
        f"{field.name}: expected {field.type}, got {got[field.name].type}"
        for field in schema
        if field.name in got and not got[field.name].type.equals(field.type)
    ]
    if missing or extra or wrong:
        raise SnapshotError(
            f"{name}: table does not match its snapshot schema (missing {missing}, "
            f"unexpected {extra}, wrong types {wrong}); build it with index_store.snapshots.layout "
            "(embeddings: pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), dim))"
        )
    try:
        conformed = table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, ValueError) as error:
        raise SnapshotError(f"{name}: {error}") from error
    if "embedding" in schema.names:
        values = pc.list_flatten(conformed.column("embedding"))
        if values.null_count:
            raise SnapshotError(f"{name}: {values.null_count} embedding values are null")
    return conformed


def check_model_version(table: pa.Table, model_version: str, name: str) -> None:
    """Refuse rows embedded by another model than the snapshot's (one model per snapshot)."""
    found = [v for v in pc.unique(table.column("model_version")).to_pylist() if v != model_version]
    if found:
        raise SnapshotError(
            f"{name}: rows carry model versions {found}, the snapshot is of {model_version!r}; "
            "an index serves one model, so its snapshot holds one"
        )


def check_posts(posts: pa.Table, next_int_id: int) -> None:
    """Refuse duplicate ids, and int ids the restored index would hand out again."""
    if posts.num_rows == 0:
        return
    top = pc.max(posts.column("int_id")).as_py()
    if top >= next_int_id:
        raise SnapshotError(f"posts: int_id {top} is not below next_int_id {next_int_id}")
    for column in ("post_id", "int_id"):
        distinct = pc.count_distinct(posts.column(column)).as_py()
        if distinct != posts.num_rows:
            raise SnapshotError(
                f"posts: {posts.num_rows - distinct} duplicate {column} values; each post "
                "must appear once"
            )


def check_extra_names(extras: Iterable[str]) -> None:
    """Refuse extra file names that would clash with the snapshot's own or leave its dir."""
    for name in extras:
        if name in (*TABLE_FILES, MANIFEST_FILE) or not name or "/" in name or name[0] == ".":
            raise SnapshotError(
                f"extra file name {name!r} is reserved or not a plain file name; "
                "use e.g. 'index.faiss'"
            )
