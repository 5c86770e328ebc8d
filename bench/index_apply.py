"""Update apply rate of the index store: upserts/s and deletes/s per backend.

A store is filled with ``--size`` posts, then timed: new posts, re-embeddings of existing posts
(the backend removes the old vector and adds the new one), and deletes, each applied through
``IndexStore.apply_batch`` in the index feed's poll batches (2,000 records). Building the
update objects is not timed (the feed decodes them before applying). Baseline, same run: the
same operations applied one record per call (how the skeleton applied them), on fewer
records since it is slow on large flat indexes.

    python -m bench.index_apply --size 200000 --backends flat,ivf,hnsw,torch
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from bench.common import emit
from bench.index_workload import bench_settings, corpus, filled_store, update_chunks
from index_store import IndexStore, StoreUpdate

BENCH = "index_apply"


def timed(apply: Callable[[list[StoreUpdate]], object], batches: list[list[StoreUpdate]]) -> float:
    """Records per second applying ``batches`` one ``apply`` call each."""
    started = time.perf_counter()
    for batch in batches:
        apply(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def rates(
    store: IndexStore, fresh: np.ndarray, targets: tuple[int, int, int], count: int, batch: int
) -> dict[str, float]:
    """New posts from id ``targets[0]``, re-embeddings of posts from ``targets[1]`` and deletes
    of posts from ``targets[2]``, ``count`` of each, per second."""
    new_first, reembed_first, delete_first = targets

    def apply(records: list[StoreUpdate]) -> object:
        return store.apply_batch(records, live=False)

    new = list(update_chunks(fresh[:count], first=new_first, chunk=batch))
    again = list(
        update_chunks(fresh[count : 2 * count], first=reembed_first, version=2, chunk=batch)
    )
    deletes = [
        [StoreUpdate("post", f"p{i}", None) for i in range(s, min(s + batch, delete_first + count))]
        for s in range(delete_first, delete_first + count, batch)
    ]
    return {
        "upserts_new_per_s": timed(apply, new),
        "upserts_reembed_per_s": timed(apply, again),
        "deletes_per_s": timed(apply, deletes),
    }


def run(size: int, dim: int, backend: str, count: int, baseline: int) -> None:
    if size < 3 * count + baseline:
        raise SystemExit("--size must be at least 3 x --count + --baseline-count")
    settings = bench_settings(backend)
    vectors = corpus(size + 2 * count, dim, seed=1)
    store, _ = filled_store(settings, vectors[:size])
    batched = rates(store, vectors[size:], (size, 0, count), count, 2_000)
    single = rates(store, vectors[size:], (size + count, 2 * count, 3 * count), baseline, 1)
    posts = store.counts()["posts"]
    assert posts == size, f"{posts} posts after equal numbers of inserts and deletes"
    config = {"size": size, "dim": dim, "backend": backend, "batch": 2_000, "records": count}
    for metric, value in batched.items():
        emit(BENCH, config, metric, value, "records/s", "one record per call", single[metric])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--backends", default="flat,ivf,torch")
    parser.add_argument("--count", type=int, default=20_000, help="records timed per operation")
    parser.add_argument("--baseline-count", type=int, default=200)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        run(args.size, args.dim, backend, args.count, args.baseline_count)


if __name__ == "__main__":
    main()
