"""Seeded synthetic embeddings shared by the kNN benchmarks.

Uniform random unit vectors are a poor stand-in for sentence embeddings: in 384 dimensions
every pair is nearly orthogonal, the "10 nearest" are barely nearer than the rest, and every
ANN index looks bad. Real embeddings gather in topics and vary along few directions within a
topic (low intrinsic dimension). So a vector here is

    normalise(centre[c] + basis[c] @ z + noise),  z ~ N(0, LOCAL_SCALE^2 I_r),

with ``clusters`` random unit centres (topics), a random ``r``-dimensional (``intrinsic``)
basis per topic, and some isotropic noise. The defaults (128 topics, 64 intrinsic
dimensions, offsets larger than the centre) make each topic a continuum rather than a tight
ball, so IVF cells cut through topics and neighbours straddle cells. Measured at 100k x 384:
cosine to the 1st / 10th nearest neighbour ~0.61 / 0.54, random pairs 0.00 +- 0.07, and IVF
(nlist 1024) recall@10 0.88 / 0.96 / 0.998 at nprobe 8 / 16 / 32 — non-trivial, unlike tight
clusters (recall 1.0 at any nprobe) or uniform vectors (no meaningful neighbours).
"""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np

CLUSTERS = 128
INTRINSIC = 64
LOCAL_SCALE = 0.16  # per intrinsic direction: local offsets of norm ~1.3
NOISE_SCALE = 0.02  # per dimension: isotropic noise of norm ~0.4 at 384-d
CHUNK = 131_072


def _clusters(dim: int, seed: int, clusters: int, intrinsic: int) -> tuple[np.ndarray, ...]:
    """(clusters, dim) unit centres and (clusters, intrinsic, dim) local bases, from ``seed``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Rows of norm ~1, so a local offset z @ basis has norm ~ LOCAL_SCALE * sqrt(intrinsic).
    bases = rng.standard_normal((clusters, intrinsic, dim), dtype=np.float32) / np.sqrt(dim)
    return centres, bases.astype(np.float32)


def _draw(
    n: int, centres: np.ndarray, bases: np.ndarray, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """``n`` normalised points around the given clusters, as (<= CHUNK, dim) chunks."""
    clusters, intrinsic, dim = bases.shape
    for start in range(0, n, CHUNK):
        rows = min(CHUNK, n - start)
        owner = rng.integers(0, clusters, rows)
        z = rng.standard_normal((rows, intrinsic), dtype=np.float32) * LOCAL_SCALE
        points = centres[owner] + rng.standard_normal((rows, dim), dtype=np.float32) * NOISE_SCALE
        # Group rows by cluster so each cluster's basis is one small matmul.
        order = np.argsort(owner, kind="stable")
        bounds = np.searchsorted(owner[order], np.arange(clusters + 1))
        for c in np.flatnonzero(np.diff(bounds)):
            members = order[bounds[c] : bounds[c + 1]]
            points[members] += z[members] @ bases[c]  # (m, dim)
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        yield points


def iter_clustered_unit_vectors(
    n: int, dim: int, seed: int = 0, clusters: int = CLUSTERS, intrinsic: int = INTRINSIC
) -> Iterator[np.ndarray]:
    """:func:`clustered_unit_vectors` in (<= CHUNK, dim) pieces, for sizes that should not
    sit in host memory at once."""
    centres, bases = _clusters(dim, seed, clusters, intrinsic)
    return _draw(n, centres, bases, np.random.default_rng([seed, 1]))


def clustered_unit_vectors(
    n: int, dim: int, seed: int = 0, clusters: int = CLUSTERS, intrinsic: int = INTRINSIC
) -> np.ndarray:
    """(n, dim) float32 unit vectors from a seeded low-rank Gaussian mixture (see module doc)."""
    out = np.empty((n, dim), dtype=np.float32)
    start = 0
    for chunk in iter_clustered_unit_vectors(n, dim, seed, clusters, intrinsic):
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    return out


def queries_like(
    n: int, dim: int, seed: int = 0, clusters: int = CLUSTERS, intrinsic: int = INTRINSIC
) -> np.ndarray:
    """(n, dim) query vectors from the same mixture as ``clustered_unit_vectors(.., seed)``
    but a different stream, so no query is a stored vector."""
    centres, bases = _clusters(dim, seed, clusters, intrinsic)
    return np.concatenate(list(_draw(n, centres, bases, np.random.default_rng([seed, 2]))))


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth: exact inner-product ``(scores, positions)`` in ``base``, both (B, k)."""
    scores, positions = faiss.knn(queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)
    return scores, positions.astype(np.int64)
