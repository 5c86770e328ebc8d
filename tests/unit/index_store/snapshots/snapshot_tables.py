"""Builders of snapshot tables for tests: posts, members and deleted ids from numpy vectors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from index_store.snapshots import Snapshot, SnapshotStore
from index_store.snapshots.layout import DELETED_SCHEMA, members_schema, posts_schema

MODEL = "all-MiniLM-L6-v2@d7fab4550a5e+pct"
DIM = 8
OFFSETS = {("embeddings.posts", 0): 120, ("embeddings.posts", 1): 7, ("embeddings.members", 0): 3}


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 rows of unit length."""
    matrix = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def embeddings(matrix: np.ndarray) -> pa.FixedSizeListArray:
    """(N, D) float32 → fixed_size_list<float32>[D], without copying the values."""
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])


def posts_table(
    ids: Sequence[str],
    matrix: np.ndarray,
    *,
    versions: Sequence[int] | None = None,
    prompt_version: str = "post-simple-1",
    model_version: str = MODEL,
) -> pa.Table:
    """Posts ``ids`` with ``matrix`` rows as embeddings; int ids 0..N-1."""
    n = len(ids)
    authors = [f"a{i % 7}" for i in range(n)]
    attrs = [
        json.dumps({"author_id": a, "format": "text", "rank": i}) for i, a in enumerate(authors)
    ]
    return pa.Table.from_pydict(
        {
            "post_id": list(ids),
            "int_id": list(range(n)),
            "embedding": embeddings(matrix),
            "version": list(versions or [1] * n),
            "author_id": authors,
            "format": ["text"] * n,
            "language": [None if i % 3 else "en" for i in range(n)],
            "created_at_ms": [1_700_000_000_000 + i for i in range(n)],
            "attrs_json": attrs,
            "model_version": [model_version] * n,
            "prompt_version": [prompt_version] * n,
            "event_time_ms": [1_700_000_001_000 + i for i in range(n)],
            "updated_at_ms": [1_700_000_002_000 + i for i in range(n)],
        },
        schema=posts_schema(matrix.shape[1]),
    )


def members_table(
    ids: Sequence[str], matrix: np.ndarray, *, model_version: str = MODEL
) -> pa.Table:
    """Members ``ids`` with ``matrix`` rows as embeddings."""
    n = len(ids)
    return pa.Table.from_pydict(
        {
            "member_id": list(ids),
            "embedding": embeddings(matrix),
            "version": [1] * n,
            "model_version": [model_version] * n,
            "prompt_version": ["member-simple-1"] * n,
            "event_time_ms": [1_700_000_001_000] * n,
            "updated_at_ms": [1_700_000_002_000] * n,
        },
        schema=members_schema(matrix.shape[1]),
    )


def deleted_table(ids: Sequence[str]) -> pa.Table:
    """Remembered deleted post ids."""
    return pa.Table.from_pydict({"post_id": list(ids)}, schema=DELETED_SCHEMA)


def tables(n_posts: int = 5, seed: int = 0) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Posts ``p0``…, members ``m0`` and ``m1`` (vectors of ``DIM``) and two deleted ids."""
    posts = posts_table([f"p{i}" for i in range(n_posts)], unit_vectors(n_posts, DIM, seed))
    members = members_table(["m0", "m1"], unit_vectors(2, DIM, seed + 100))
    return posts, members, deleted_table(["gone1", "gone2"])


def write(store: SnapshotStore, seed: int = 0, **overrides: Any) -> Snapshot:
    """A snapshot of ``tables(seed=seed)`` (or ``tables=``) written to ``store``."""
    posts, members, deleted = overrides.pop("tables", None) or tables(seed=seed)
    kwargs: dict[str, Any] = {
        "model_version": MODEL,
        "embedding_dim": DIM,
        "backend": "flat",
        "next_int_id": 100,
        "offsets": OFFSETS,
    }
    return store.write(posts, members, deleted, **(kwargs | overrides))
