"""Seeded clustered unit vectors and a numpy brute force to check the backends against."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest

DIM = 32
N = 4_000
CLUSTERS = 40

BruteForce = Callable[..., tuple[np.ndarray, np.ndarray]]


class Vectors(NamedTuple):
    """A seeded data set under sparse, non-contiguous ids."""

    ids: np.ndarray
    """(N,) int64, ``3 * i + 5`` so that positions and ids differ."""
    vectors: np.ndarray
    """(N, DIM) float32 unit vectors around CLUSTERS centres."""
    queries: np.ndarray
    """(50, DIM) float32 unit vectors drawn from the same clusters (not in the data)."""


def clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors scattered around random unit centres (like embeddings, unlike uniform)."""
    centres = rng.standard_normal((CLUSTERS, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = centres[rng.integers(0, CLUSTERS, n)] + 0.15 * rng.standard_normal((n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def data() -> Vectors:
    """4,000 clustered 32-d vectors and 50 queries, seeded."""
    points = clustered(N + 50, DIM, np.random.default_rng(1234))
    return Vectors(ids=np.arange(N, dtype=np.int64) * 3 + 5, vectors=points[:N], queries=points[N:])


def brute_force_search(
    ids: np.ndarray,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product in numpy, padded with -inf / -1 like the backends."""
    if allowed is not None:
        inside = ids < len(allowed)
        keep = np.zeros(len(ids), dtype=bool)
        keep[inside] = allowed[ids[inside]]
        ids, vectors = ids[keep], vectors[keep]
    scores = queries @ vectors.T  # (B, n)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    top_ids = np.full((len(queries), k), -1, dtype=np.int64)
    top_scores[:, : order.shape[1]] = np.take_along_axis(scores, order, axis=1)
    top_ids[:, : order.shape[1]] = ids[order]
    return top_scores, top_ids


@pytest.fixture
def brute_force() -> BruteForce:
    """:func:`brute_force_search`, as a fixture (test modules cannot import conftest)."""
    return brute_force_search


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true ids (>= 0) that were found, over all rows."""
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth, strict=True))
    return hits / max(int((truth >= 0).sum()), 1)


@pytest.fixture
def recall() -> Callable[[np.ndarray, np.ndarray], float]:
    """:func:`recall_at`, as a fixture."""
    return recall_at


def sparse_mask(ids: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """A bool mask indexed by id selecting about ``share`` of ``ids`` (at least one)."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, max(1, round(share * len(ids))), replace=False)
    mask = np.zeros(int(ids.max()) + 1, dtype=bool)
    mask[chosen] = True
    return mask


@pytest.fixture
def mask_of() -> Callable[..., np.ndarray]:
    """:func:`sparse_mask`, as a fixture."""
    return sparse_mask
