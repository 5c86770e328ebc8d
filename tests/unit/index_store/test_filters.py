"""Attribute pre-filters through ``IndexStore.search`` on every backend: the filter applies
before top-k, so ``k`` results come back whenever ``k`` posts pass, even at 0.1%."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from index_store import IndexSettings, IndexStore, PostFilter, StoreUpdate
from schemas import EmbeddingUpdate

DIM = 32
N = 5_000
MODEL = "test-model@1"
LANGUAGES = ("en", "de", "fr", "es", "it")


def corpus() -> tuple[np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((20, DIM)).astype(np.float32)
    vectors = centers[rng.integers(0, 20, N)] + 0.3 * rng.standard_normal((N, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    attrs = [
        {
            # "xx" marks 5 posts (0.1%), "yy" 50 (1%), the rest spread over five languages
            "language": "xx" if i % 1000 == 0 else "yy" if i % 100 == 1 else LANGUAGES[i % 5],
            "format": "video" if i % 10 == 0 else "text",
            "author_id": f"a{i % 500}",
            "created_at_ms": 1_000 + i,
        }
        for i in range(N)
    ]
    return vectors, attrs


def post_update(i: int, vector: np.ndarray, attrs: dict[str, Any]) -> EmbeddingUpdate:
    return EmbeddingUpdate(
        entity="post",
        entity_id=f"p{i}",
        version=1,
        dim=DIM,
        vector_b64=EmbeddingUpdate.encode_vector(vector),
        model_version=MODEL,
        prompt_version="p",
        attrs=attrs,
        event_time_ms=1,
        prompted_at_ms=1,
        embedded_at_ms=1,
    )


BACKENDS = {
    "flat": {"backend": "flat"},
    "ivf": {"backend": "ivf", "ivf_nlist": 16, "ivf_nprobe": 2, "ivf_train_size": 1_000},
    "hnsw": {"backend": "hnsw", "hnsw_m": 8, "hnsw_ef_search": 16},
    "torch": {"backend": "torch", "torch_device": "cpu", "torch_dtype": "float32"},
}


@pytest.fixture(scope="module", params=[(b, s) for b in BACKENDS for s in (0, 20_000)])
def filled(request: pytest.FixtureRequest) -> tuple[IndexStore, np.ndarray, list[dict[str, Any]]]:
    backend, subset_max = request.param
    settings = IndexSettings(
        **BACKENDS[backend], subset_scan_max=subset_max, subset_scan_fraction=1.0
    )
    store = IndexStore(DIM, MODEL, settings=settings)
    vectors, attrs = corpus()
    store.apply_batch(
        [StoreUpdate("post", f"p{i}", post_update(i, vectors[i], attrs[i])) for i in range(N)],
        live=False,
    )
    return store, vectors, attrs


def expected(
    vectors: np.ndarray, attrs: list[dict[str, Any]], query: np.ndarray, k: int, keep: Any
) -> list[str]:
    eligible = [i for i in range(N) if keep(i, attrs[i])]
    scores = vectors[eligible] @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [f"p{eligible[j]}" for j in order]


EN_DE = frozenset({"en", "de"})
CASES = {
    "0.1% language": (PostFilter(languages=frozenset({"xx"})), lambda i, a: a["language"] == "xx"),
    "1% language": (PostFilter(languages=frozenset({"yy"})), lambda i, a: a["language"] == "yy"),
    "10% format": (PostFilter(formats=frozenset({"video"})), lambda i, a: a["format"] == "video"),
    "author": (
        PostFilter(authors=frozenset({"a7", "a8"})),
        lambda i, a: a["author_id"] in {"a7", "a8"},
    ),
    "created after": (PostFilter(created_after_ms=1_000 + N - 12), lambda i, a: i >= N - 12),
    "exclude authors + posts": (
        PostFilter(
            exclude_authors=frozenset({f"a{j}" for j in range(250)}),
            exclude_posts=frozenset({"p251", "p252"}),
        ),
        lambda i, a: i % 500 >= 250 and i not in (251, 252),
    ),
    "combined": (
        PostFilter(languages=EN_DE, formats=frozenset({"video"}), created_after_ms=3_000),
        lambda i, a: a["language"] in EN_DE and a["format"] == "video" and i >= 2_000,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("k", [3, 10, 60])
def test_filtered_search_returns_min_k_eligible_and_only_eligible(
    filled: tuple[IndexStore, np.ndarray, list[dict[str, Any]]], case: str, k: int
) -> None:
    store, vectors, attrs = filled
    flt, keep = CASES[case]
    query = vectors[123] + 0.1
    query = (query / np.linalg.norm(query)).astype(np.float32)
    want = expected(vectors, attrs, query, k, keep)
    got = store.search(query, k, flt)
    assert len(got) == len(want) == min(k, sum(keep(i, a) for i, a in enumerate(attrs)))
    assert all(keep(int(hit.post_id[1:]), record.attrs) for hit, record in got)
    ids = [hit.post_id for hit, _ in got]
    if store.backend.exact or len(want) <= store.settings.subset_scan_max:
        assert ids == want
    else:  # an approximate backend: most of the true top-k
        assert len(set(ids) & set(want)) >= 0.6 * len(want)


def test_unknown_filter_values_match_nothing(
    filled: tuple[IndexStore, np.ndarray, list[dict[str, Any]]],
) -> None:
    store, vectors, _ = filled
    assert store.search(vectors[0], 10, PostFilter(languages=frozenset({"klingon"}))) == []
    assert store.search(vectors[0], 10, PostFilter(authors=frozenset())) == []
    excluded_all = PostFilter(created_after_ms=10**15)
    assert store.search(vectors[0], 10, excluded_all) == []
