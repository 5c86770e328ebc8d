"""The dual-encoder training set on disk: a directory of Parquet tables and a manifest.

Built from the synthetic world (``feedline.dual_data``) or from Kafka
(``streams.training_export``), read by the dual-encoder trainer and its evaluation. Time is
split once: engagements with ``ts_ms < split_ms`` are the TRAIN period, the rest (the last
``holdout_fraction`` of the engagement time span) the EVAL period. A positive is an engagement
with action like, comment, share or long_dwell.

``<dir>/``
  - ``examples.parquet`` (`EXAMPLES_SCHEMA`): one row per (member, post) pair whose first
    positive engagement is in the train period, at that time ``ts_ms`` (a like, a comment and
    a long dwell on one post are one example, so a batch never holds a pair twice), in time
    order. ``member_prompt`` is the member as of just before ``ts_ms``; ``post_prompt`` the
    post as of ``ts_ms``; ``hard_negative_ids``/``_prompts`` up to ``max_hard_negatives``
    posts the member was shown (impression) in the train period and never engaged with
    positively (at any time), the impression nearest in time to ``ts_ms`` first.
  - ``posts.parquet`` (`POSTS_SCHEMA`): every post with a prompt, as of the split;
    ``popularity`` counts its non-impression engagements before the split.
  - ``seen.parquet`` (`SEEN_SCHEMA`): every (member, post) pair with an impression, any time.
  - ``positives.parquet`` (`POSITIVES_SCHEMA`): every (member, post) pair with a positive
    engagement, any time, with the first one's time: what negatives must never be.
  - ``eval.parquet`` (`EVAL_SCHEMA`): one row per member with a post first positively engaged
    in the eval period (and present in posts.parquet): ``member_prompt`` as of the split,
    ``relevant_post_ids`` those posts, ``seen_before_split`` posts impressed before the
    split except relevant ones (a post shown just before the split and liked after it is a
    target, not a post to exclude from retrieval).
  - ``heldout.parquet`` (`HELDOUT_SCHEMA`), leave-one-out sets only (``manifest.split``):
    per member a ``valid`` row (target: the second-to-last interaction) and a ``test`` row
    (the last), each with ``member_prompt`` and ``history_post_ids`` of everything before
    the target, oldest first, and the source's ``negative_post_ids`` for the 99-negatives
    protocol (empty when the source has none). In such a set ``eval.parquet`` holds the
    test rows, ``examples`` only interactions before each member's validation target, and
    ``split_ms`` is the last training interaction's time + 1 (informational).
  - ``manifest.json`` (`TrainingManifest`), written last: a directory without one is
    incomplete. ``counts`` holds every table's rows; reading checks them, so tables of two
    different writes are never mixed.

Example::

    training_set = world_training_set(world, library)          # feedline.dual_data
    write_training_set(Path("train"), training_set)
    read_training_set(Path("train")).examples.num_rows         # 2,702
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from schemas.errors import SchemaError

LAYOUT_VERSION = 1
MANIFEST_FILE = "manifest.json"
HistoryMode = Literal["positive", "all"]
NumberFormat = Literal["percentile", "raw"]


def _s(name: str) -> pa.Field:
    return pa.field(name, pa.string(), nullable=False)


def _i(name: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, pa.int64(), nullable=nullable)


def _ids(name: str) -> pa.Field:
    return pa.field(name, pa.list_(pa.field("item", pa.string(), nullable=False)), nullable=False)


EXAMPLES_SCHEMA = pa.schema(
    [_s("member_id"), _i("ts_ms"), _s("member_prompt"), _s("post_id"), _s("post_prompt"),
     _ids("hard_negative_ids"), _ids("hard_negative_prompts")]
)  # fmt: skip
POSTS_SCHEMA = pa.schema(
    [_s("post_id"), _s("post_prompt"), pa.field("author_id", pa.string()),
     _i("created_at_ms", nullable=True), _i("popularity")]
)  # fmt: skip
SEEN_SCHEMA = pa.schema([_s("member_id"), _s("post_id")])
POSITIVES_SCHEMA = pa.schema([_s("member_id"), _s("post_id"), _i("first_ts_ms")])
EVAL_SCHEMA = pa.schema(
    [_s("member_id"), _s("member_prompt"), _ids("relevant_post_ids"), _ids("seen_before_split")]
)
HELDOUT_SCHEMA = pa.schema(
    [_s("member_id"), _s("stage"), _s("member_prompt"), _ids("history_post_ids"),
     _s("target_post_id"), _ids("negative_post_ids")]
)  # fmt: skip
TABLES: dict[str, pa.Schema] = {
    "examples": EXAMPLES_SCHEMA,
    "posts": POSTS_SCHEMA,
    "seen": SEEN_SCHEMA,
    "positives": POSITIVES_SCHEMA,
    "eval": EVAL_SCHEMA,
}
"""Table name → schema; each is stored as ``<name>.parquet``."""
SPLIT_TABLES: dict[str, pa.Schema] = {"heldout": HELDOUT_SCHEMA}
"""Tables of a leave-one-out set only (``manifest.split == "leave_one_out"``)."""
SCHEMAS: dict[str, pa.Schema] = TABLES | SPLIT_TABLES
Split = Literal["time", "leave_one_out"]


class TrainingSetError(SchemaError):
    """A training-set directory or table is missing, incomplete or has the wrong columns."""


class TrainingManifest(BaseModel):
    """How a training set was made. ``counts`` has every table's rows, and may add more."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layout_version: Literal[1] = 1
    split: Split = "time"
    """``time``: one split time for everyone; ``leave_one_out``: per member (``heldout``)."""
    split_ms: int
    holdout_fraction: float = Field(ge=0.0, lt=1.0)
    source: str
    history: HistoryMode
    numbers: NumberFormat
    max_hard_negatives: NonNegativeInt
    prompt_versions: dict[str, str] = Field(default_factory=dict)
    counts: dict[str, NonNegativeInt]
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())


class TrainingSet(NamedTuple):
    """A loaded training set: one Arrow table per file (schemas above) and the manifest."""

    examples: pa.Table
    """`EXAMPLES_SCHEMA`: train-period positives with their hard negatives, by time."""
    posts: pa.Table
    """`POSTS_SCHEMA`: the candidate posts, as of the split."""
    seen: pa.Table
    """`SEEN_SCHEMA`: impressed (member, post) pairs, any time."""
    positives: pa.Table
    """`POSITIVES_SCHEMA`: positively engaged (member, post) pairs, any time."""
    eval: pa.Table
    """`EVAL_SCHEMA`: eval-period targets per member."""
    manifest: TrainingManifest
    heldout: pa.Table | None = None
    """`HELDOUT_SCHEMA`, leave-one-out sets only: the validation and test targets."""

    def table_names(self) -> tuple[str, ...]:
        """The tables this set stores: `TABLES`, plus `SPLIT_TABLES` for leave-one-out."""
        return _names(self.manifest)


def _names(manifest: TrainingManifest) -> tuple[str, ...]:
    extra = tuple(SPLIT_TABLES) if manifest.split == "leave_one_out" else ()
    return (*TABLES, *extra)


def write_training_set(directory: str | os.PathLike[str], training_set: TrainingSet) -> None:
    """Write ``training_set`` into ``directory`` (created if needed).

    Every file is replaced atomically (temporary file, fsync, rename); the old manifest goes
    first and the new one comes last, so a crash leaves a directory that reads as incomplete.

    Raises:
        TrainingSetError: a table does not match its schema, or the manifest's counts do not
            match the tables.
    """
    path = Path(directory)
    names = training_set.table_names()
    if training_set.manifest.split == "leave_one_out" and training_set.heldout is None:
        raise TrainingSetError("a leave-one-out training set needs its heldout table")
    tables = {name: conform(getattr(training_set, name), name) for name in names}
    _check_counts(training_set.manifest, tables, str(path))
    path.mkdir(parents=True, exist_ok=True)
    (path / MANIFEST_FILE).unlink(missing_ok=True)
    for name, table in tables.items():
        _replace(path / f"{name}.parquet", partial(_write_parquet, table))
    text = training_set.manifest.model_dump_json(indent=2) + "\n"
    _replace(path / MANIFEST_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_training_set(directory: str | os.PathLike[str]) -> TrainingSet:
    """Load a directory written by `write_training_set`, every table checked and conformed.

    Raises:
        TrainingSetError: the directory or a file is missing or unreadable, a table's columns
            are missing or mistyped, or the row counts differ from the manifest.
    """
    path = Path(directory)
    manifest = _read_manifest(path)
    tables = {
        name: conform(_read_table(path / f"{name}.parquet"), name) for name in _names(manifest)
    }
    _check_counts(manifest, tables, str(path))
    return TrainingSet(**tables, manifest=manifest)


def conform(table: pa.Table, name: str) -> pa.Table:
    """``table`` cast to the schema of table ``name`` (extra columns dropped), or an error
    naming every missing or mistyped column, or the columns holding nulls."""
    schema = SCHEMAS[name]
    missing = [f.name for f in schema if f.name not in table.column_names]
    wrong = [
        f"{f.name}: expected {f.type}, got {table.schema.field(f.name).type}"
        for f in schema
        if f.name not in missing and not _compatible(table.schema.field(f.name).type, f.type)
    ]
    if missing or wrong:
        raise TrainingSetError(
            f"{name}: not a {name} table (missing columns {missing}, wrong types {wrong}); "
            f"expected {', '.join(f'{f.name} {f.type}' for f in schema)}"
        )
    try:
        columns = [table.column(f.name).cast(f.type) for f in schema]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise TrainingSetError(f"{name}: {error}") from error
    nulls = {f.name: c.null_count for f, c in zip(schema, columns, strict=True) if not f.nullable}
    if any(nulls.values()):
        raise TrainingSetError(f"{name}: required columns hold nulls {_nonzero(nulls)}")
    conformed = pa.Table.from_arrays(columns, schema=schema)
    _check_lists(conformed, name)
    return conformed


def _compatible(got: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_dictionary(got):
        got = got.value_type
    if pa.types.is_null(got):
        return True  # an all-null column: the null check decides
    if pa.types.is_string(expected):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(got)
    if pa.types.is_list(expected):
        is_list = pa.types.is_list(got) or pa.types.is_large_list(got)
        return is_list and _compatible(got.value_type, expected.value_type)
    return bool(got.equals(expected))


def _check_lists(table: pa.Table, name: str) -> None:
    """No null list items, and as many hard negative prompts as ids in every example."""
    for field in table.schema:
        if pa.types.is_list(field.type):
            flat = pc.list_flatten(table.column(field.name))
            if flat.null_count:
                raise TrainingSetError(f"{name}: {field.name} holds {flat.null_count} null items")
    if name == "examples":
        ids = pc.list_value_length(table.column("hard_negative_ids"))
        prompts = pc.list_value_length(table.column("hard_negative_prompts"))
        if table.num_rows and not pc.all(pc.equal(ids, prompts)).as_py():
            raise TrainingSetError(
                "examples: hard_negative_ids and hard_negative_prompts differ in length"
            )


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in counts.items() if value}


def _check_counts(manifest: TrainingManifest, tables: dict[str, pa.Table], where: str) -> None:
    differ = {
        name: (manifest.counts.get(name), table.num_rows)
        for name, table in tables.items()
        if manifest.counts.get(name) != table.num_rows
    }
    if differ:
        raise TrainingSetError(
            f"{where}: manifest counts differ from the tables {differ} (manifest, rows): files "
            "of different writes, or a hand-edited manifest; rebuild the training set"
        )


def _read_manifest(path: Path) -> TrainingManifest:
    file = path / MANIFEST_FILE
    if not file.is_file():
        raise TrainingSetError(
            f"{path}: no {MANIFEST_FILE}: not a training set, or its write did not finish; "
            "build it again (e.g. `feedline export training-set --out DIR`)"
        )
    try:
        return TrainingManifest.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as error:
        raise TrainingSetError(f"{file}: not a valid training-set manifest: {error}") from error


def _read_table(file: Path) -> pa.Table:
    try:
        return pq.read_table(file)
    except (OSError, pa.ArrowException) as error:
        raise TrainingSetError(f"{file}: not a readable Parquet file: {error}") from error


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, fsync it, rename it over."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
