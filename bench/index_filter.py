"""Filtered search: latency and result count at 0.1%, 1% and 10% selectivity, per backend.

Posts carry a ``language`` chosen so that one value matches 0.1%, another 1% and another 10%
of the index (``bench.index_workload``). Each query asks for k=10 posts in that language; the
filter runs before top-k (small eligible sets are scanned exactly, larger ones through the
backend's own selector), so every query must return 10. Baseline, same run: the same queries
without a filter.

    python -m bench.index_filter --size 200000 --backends flat,ivf,hnsw,torch
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import emit
from bench.index_workload import SELECTIVITY_LANGUAGE, bench_settings, corpus, filled_store
from index_store import NO_FILTER, IndexStore, PostFilter

BENCH = "index_filter"
K = 10


def latencies(store: IndexStore, queries: np.ndarray, flt: PostFilter) -> tuple[np.ndarray, int]:
    """Per-query seconds, and the fewest results any query got."""
    store.search(queries[0], K, flt)  # warm-up
    seconds, fewest = [], K
    for query in queries:
        started = time.perf_counter()
        hits = store.search(query, K, flt)
        seconds.append(time.perf_counter() - started)
        fewest = min(fewest, len(hits))
    return np.array(seconds), fewest


def run(size: int, dim: int, backend: str, n_queries: int) -> None:
    settings = bench_settings(backend)
    vectors = corpus(size + n_queries, dim, seed=2)
    store, _ = filled_store(settings, vectors[:size])
    queries = vectors[size:]
    unfiltered, _ = latencies(store, queries, NO_FILTER)
    base = {
        "p50": float(np.percentile(unfiltered, 50)),
        "p99": float(np.percentile(unfiltered, 99)),
    }
    for selectivity, language in SELECTIVITY_LANGUAGE.items():
        flt = PostFilter(languages=frozenset({language}))
        seconds, fewest = latencies(store, queries, flt)
        config = {"size": size, "dim": dim, "backend": backend, "k": K, "selectivity": selectivity}
        for q in ("p50", "p99"):
            value = float(np.percentile(seconds, int(q[1:]))) * 1000
            emit(BENCH, config, f"latency_{q}_ms", value, "ms", "unfiltered", base[q] * 1000)
        emit(BENCH, config, "fewest_results", fewest, "posts", "k", K)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--backends", default="flat,ivf,torch")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        run(args.size, args.dim, backend, args.queries)


if __name__ == "__main__":
    main()
