"""Builders of snapshot tables for tests: posts, members and deleted ids from numpy vectors."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from schemas.snapshot import DELETED_SCHEMA, members_schema, posts_schema

MODEL = "all-MiniLM-L6-v2@d7fab4550a5e+pct"


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
