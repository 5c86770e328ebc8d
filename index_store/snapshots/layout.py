"""On-disk records of an index snapshot: Arrow schemas of its Parquet files and its manifest.

A snapshot is a directory ``snap-<snapshot_id>/`` holding ``posts.parquet``,
``members.parquet``, ``deleted.parquet``, any extra files (e.g. ``index.faiss``) and,
written last, ``manifest.json`` (a ``SnapshotManifest``). Embeddings are fixed-size lists of
float32, built without copies from a ``(N, D)`` matrix::

    pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), dim)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

POSTS_FILE = "posts.parquet"
MEMBERS_FILE = "members.parquet"
DELETED_FILE = "deleted.parquet"
MANIFEST_FILE = "manifest.json"
TABLE_FILES = (POSTS_FILE, MEMBERS_FILE, DELETED_FILE)

#: Keys of the Parquet key-value metadata every snapshot file carries.
EMBEDDING_DIM_KEY = "embedding_dim"
MODEL_VERSION_KEY = "model_version"

SNAPSHOT_ID_PATTERN = re.compile(r"^(\d{8})-(\d{8}T\d{6}Z)$")


def embedding_type(dim: int) -> pa.DataType:
    """``fixed_size_list<float32>[dim]``: one embedding."""
    return pa.list_(pa.float32(), dim)


def posts_schema(dim: int) -> pa.Schema:
    """Rows of ``posts.parquet``: one indexed post each."""
    return pa.schema(
        [
            pa.field("post_id", pa.string(), nullable=False),
            pa.field("int_id", pa.int64(), nullable=False),  # the index's persistent id
            pa.field("embedding", embedding_type(dim), nullable=False),
            pa.field("version", pa.int64(), nullable=False),
            pa.field("author_id", pa.string()),
            pa.field("format", pa.string()),
            pa.field("language", pa.string()),
            pa.field("created_at_ms", pa.int64()),
            pa.field("attrs_json", pa.string()),  # the post's full attribute dict as JSON
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("prompt_version", pa.string(), nullable=False),
            pa.field("event_time_ms", pa.int64(), nullable=False),
            pa.field("updated_at_ms", pa.int64(), nullable=False),  # when it was indexed
        ]
    )


def members_schema(dim: int) -> pa.Schema:
    """Rows of ``members.parquet``: one member embedding each."""
    return pa.schema(
        [
            pa.field("member_id", pa.string(), nullable=False),
            pa.field("embedding", embedding_type(dim), nullable=False),
            pa.field("version", pa.int64(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("prompt_version", pa.string(), nullable=False),
            pa.field("event_time_ms", pa.int64(), nullable=False),
            pa.field("updated_at_ms", pa.int64(), nullable=False),
        ]
    )


#: Rows of ``deleted.parquet``: remembered deletes, so a late insert stays dropped.
DELETED_SCHEMA = pa.schema([pa.field("post_id", pa.string(), nullable=False)])


def file_metadata(dim: int, model_version: str) -> dict[bytes, bytes]:
    """The Parquet key-value metadata written into every snapshot file."""
    return {
        EMBEDDING_DIM_KEY.encode(): str(dim).encode(),
        MODEL_VERSION_KEY.encode(): model_version.encode(),
    }


def make_snapshot_id(sequence: int, created_at_ms: int) -> str:
    """``00000042-20261125T043000Z``: sorts by sequence, readable as a UTC time."""
    when = datetime.fromtimestamp(created_at_ms / 1000, tz=UTC)
    return f"{sequence:08d}-{when:%Y%m%dT%H%M%SZ}"


Offsets = dict[str, dict[str, NonNegativeInt]]


def encode_offsets(offsets: Mapping[tuple[str, int], int]) -> Offsets:
    """``{(topic, partition): next_offset}`` as the manifest's JSON-friendly nesting."""
    nested: Offsets = {}
    for (topic, partition), offset in sorted(offsets.items()):
        nested.setdefault(topic, {})[str(partition)] = offset
    return nested


class SnapshotManifest(BaseModel):
    """What a snapshot holds and where consumption resumes after restoring it.

    ``offsets[topic][partition]`` is the next offset to consume (Kafka's committed-offset
    meaning); ``files`` maps every file of the snapshot but the manifest to its size in bytes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    format_version: Literal[1] = 1
    snapshot_id: str
    sequence: NonNegativeInt
    created_at_ms: NonNegativeInt
    model_version: str = Field(min_length=1)
    embedding_dim: int = Field(gt=0)
    backend: str
    next_int_id: NonNegativeInt
    offsets: Offsets
    counts: dict[str, NonNegativeInt]
    files: dict[str, NonNegativeInt]

    @model_validator(mode="after")
    def _consistent(self) -> SnapshotManifest:
        match = SNAPSHOT_ID_PATTERN.match(self.snapshot_id)
        if match is None or int(match.group(1)) != self.sequence:
            raise ValueError(
                f"snapshot_id {self.snapshot_id!r} must look like "
                f"'{self.sequence:08d}-YYYYMMDDTHHMMSSZ' (sequence first)"
            )
        for partitions in self.offsets.values():
            if not all(key.isdigit() for key in partitions):
                raise ValueError(f"partition keys must be decimal integers: {list(partitions)}")
        return self

    def offset_map(self) -> dict[tuple[str, int], int]:
        """Offsets as ``{(topic, partition): next_offset}``, ready to seek a consumer."""
        return {
            (topic, int(partition)): offset
            for topic, partitions in self.offsets.items()
            for partition, offset in partitions.items()
        }
