"""Shared set-up of the index benchmarks: stores of any backend filled with synthetic posts.

Posts get clustered unit vectors (``bench.vectors``) and attributes with known selectivity:
``language`` is "xx" for 0.1% of posts, "yy" for 1%, and one of ten others otherwise, so
``languages={"en"}`` matches 10%.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from bench.vectors import clustered_unit_vectors
from index_store import IndexSettings, IndexStore, StoreUpdate
from schemas import AttrValue, EmbeddingUpdate

MODEL = "bench-model@1"
LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "da")
SELECTIVITY_LANGUAGE = {0.001: "xx", 0.01: "yy", 0.1: "en"}
CHUNK = 2_000
"""Records per ``apply_batch``: the index feed's poll size."""


def bench_settings(backend: str) -> IndexSettings:
    """Index settings for ``backend``; the torch scan runs on the CPU in float32 unless CUDA
    exists (then on the GPU in float16)."""
    import torch

    gpu = torch.cuda.is_available()
    return IndexSettings.model_validate(
        {
            "backend": backend,
            "torch_device": "cuda" if gpu else "cpu",
            "torch_dtype": "float16" if gpu else "float32",
            "snapshots_enabled": False,
        }
    )


def language(i: int) -> str:
    """0.1% "xx", 1% "yy", else ten languages evenly (~9.9% each)."""
    if i % 1_000 == 0:
        return "xx"
    if i % 100 == 1:
        return "yy"
    return LANGUAGES[i % 10]


def attrs(i: int) -> dict[str, AttrValue]:
    """Filterable attributes of synthetic post ``i``."""
    return {
        "author_id": f"a{i % 5_000}",
        "format": ("text", "image", "video", "article")[i % 4],
        "language": language(i),
        "created_at_ms": 1_760_000_000_000 + i * 1_000,
    }


def post_update(i: int, vector: np.ndarray, version: int = 1) -> EmbeddingUpdate:
    """The embedding update of synthetic post ``i``."""
    return EmbeddingUpdate(
        entity="post",
        entity_id=f"p{i}",
        version=version,
        dim=int(vector.shape[0]),
        vector_b64=EmbeddingUpdate.encode_vector(vector),
        model_version=MODEL,
        prompt_version="bench-1",
        attrs=attrs(i),
        event_time_ms=1_760_000_000_000,
        prompted_at_ms=1_760_000_000_000,
        embedded_at_ms=1_760_000_000_000,
    )


def update_chunks(
    vectors: np.ndarray, first: int = 0, version: int = 1, chunk: int = CHUNK
) -> Iterator[list[StoreUpdate]]:
    """Upserts of posts ``first, first+1, ...`` with ``vectors`` (n, dim), ``chunk`` at a time."""
    for start in range(0, len(vectors), chunk):
        rows = vectors[start : start + chunk]
        yield [
            StoreUpdate(
                "post", f"p{first + start + j}", post_update(first + start + j, row, version)
            )
            for j, row in enumerate(rows)
        ]


def corpus(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 clustered unit vectors: the benchmark posts."""
    return clustered_unit_vectors(n, dim, seed=seed)


def filled_store(settings: IndexSettings, vectors: np.ndarray) -> tuple[IndexStore, float]:
    """A store holding one post per row of ``vectors``, and the seconds ``apply_batch`` took
    in total (building the updates excluded)."""
    store = IndexStore(int(vectors.shape[1]), MODEL, settings=settings)
    applying = 0.0
    for chunk in update_chunks(vectors):
        started = time.perf_counter()
        store.apply_batch(chunk, live=False)
        applying += time.perf_counter() - started
    return store, applying
