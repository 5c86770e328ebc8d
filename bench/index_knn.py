"""kNN backends on synthetic embeddings: build time, recall@10, latency, batched QPS, memory.

For each size, ``n`` seeded clustered unit vectors (``bench.vectors``) are added under ids
0..n-1 in chunks of 65,536 (as a stream would), then ``--queries`` held-out queries from the
same mixture are answered. Per backend (and per nprobe / efSearch in the sweep):

- ``build_s``: wall time of all the adds (IVF: includes k-means on ``--ivf-train-sample``);
- ``recall_at_10``: share of the exact top-10 (``faiss.knn``) found;
- ``latency_p50_ms`` / ``latency_p99_ms``: one query per call after 20 warm-up calls, over
  the queries (or as many as fit in ``--latency-budget-s``; the count is in ``config``);
- ``batched_qps``: queries per second in batches of 256, repeated for at least 2 s (at
  least one batch);
- ``memory_bytes_per_vector``: the backend's ``memory_bytes()`` / n.

Baseline, same run: the exact FAISS flat backend (always measured first). The torch scan
runs on CUDA when present, else on CPU in float32. OMP/torch threads are the library
defaults (all cores).

    python -m bench.index_knn --sizes 200000 --backends flat,ivf,hnsw,torch
    python -m bench.index_knn --sizes 1000000 --backends flat,ivf,torch
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from bench.common import emit
from bench.vectors import exact_topk, iter_clustered_unit_vectors, queries_like
from index_store.backends import FlatBackend, HnswBackend, IvfBackend, VectorBackend

BENCH = "index_knn"
BATCH = 256
WARMUP = 20
UNITS = {
    "recall_at_10": "fraction",
    "latency_p50_ms": "ms",
    "latency_p99_ms": "ms",
    "batched_qps": "queries/s",
}


@dataclass
class Data:
    """Vectors under ids 0..n-1 (in add chunks), queries, and their exact top-10 ids."""

    chunks: list[np.ndarray]
    queries: np.ndarray  # (Q, dim)
    truth: np.ndarray  # (Q, 10) ids


def make_data(n: int, dim: int, queries: int, seed: int) -> Data:
    """Seeded data and ground truth."""
    chunks = list(iter_clustered_unit_vectors(n, dim, seed))
    query_vectors = queries_like(queries, dim, seed)
    base = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    _, truth = exact_topk(base, query_vectors, 10)
    return Data(chunks, query_vectors, truth)


def build(name: str, dim: int, args: argparse.Namespace) -> VectorBackend:
    """An empty backend with the CLI's parameters."""
    if name == "flat":
        return FlatBackend(dim)
    if name == "ivf":
        return IvfBackend(dim, args.nlist, 1, args.ivf_train_min, args.ivf_train_sample)
    if name == "hnsw":
        return HnswBackend(dim, args.hnsw_m, args.ef_construction, 64)
    from index_store.backends.torch_scan import TorchScanBackend

    return TorchScanBackend(dim, args.torch_device, args.torch_dtype)


def fill(backend: VectorBackend, data: Data) -> float:
    """Add every chunk; returns seconds."""
    began = time.perf_counter()
    start = 0
    for chunk in data.chunks:
        backend.add(np.arange(start, start + len(chunk), dtype=np.int64), chunk)
        start += len(chunk)
    return time.perf_counter() - began


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true top-10 among the found top-10."""
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found[:, :10], truth, strict=True))
    return hits / truth.size


def latencies_ms(backend: VectorBackend, queries: np.ndarray, budget_s: float) -> np.ndarray:
    """Per-call ms of one-query searches, within ``budget_s`` (at least 50 queries)."""
    for query in queries[:WARMUP]:
        backend.search(query[None], 10)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for query in queries:
        began = time.perf_counter()
        backend.search(query[None], 10)
        times.append((time.perf_counter() - began) * 1e3)
        if len(times) >= 50 and time.perf_counter() > deadline:
            break
    return np.array(times)


def batched_qps(backend: VectorBackend, queries: np.ndarray, min_s: float = 2.0) -> float:
    """Queries/s in batches of ``BATCH``, over at least one batch and ``min_s`` seconds."""
    done, began = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - began < min_s:
        start = done % len(queries)
        batch = queries[start : start + BATCH]
        backend.search(batch, 10)
        done += len(batch)
    return done / (time.perf_counter() - began)


def measure(backend: VectorBackend, data: Data, budget_s: float) -> tuple[dict[str, float], int]:
    """Recall, latency percentiles and batched QPS of one configured backend."""
    _, found = backend.search(data.queries, 10)
    times = latencies_ms(backend, data.queries, budget_s)
    metrics = {
        "recall_at_10": recall_at_10(found, data.truth),
        "latency_p50_ms": float(np.percentile(times, 50)),
        "latency_p99_ms": float(np.percentile(times, 99)),
        "batched_qps": batched_qps(backend, data.queries),
    }
    return metrics, len(times)


def sweep(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The search-time settings to try for a backend."""
    if name == "ivf":
        return [{"nprobe": int(v)} for v in args.nprobe.split(",")]
    if name == "hnsw":
        return [{"ef_search": int(v)} for v in args.ef_search.split(",")]
    return [{}]


def run_backend(
    name: str, n: int, data: Data, args: argparse.Namespace, baseline: dict[str, float]
) -> dict[str, float]:
    """Build, sweep and emit one backend; returns its build metrics and first sweep point's."""
    dim = data.queries.shape[1]
    backend = build(name, dim, args)
    built = {"build_s": fill(backend, data)}
    built["memory_bytes_per_vector"] = backend.memory_bytes() / n
    config = {"n": n, "dim": dim, "backend": name, "threads": faiss.omp_get_max_threads()}
    config |= backend_params(name, args)
    against = None if name == "flat" else "flat (exact)"
    for metric, unit in (("build_s", "s"), ("memory_bytes_per_vector", "bytes")):
        emit(BENCH, config, metric, built[metric], unit, against, baseline.get(metric))
    searched: list[dict[str, float]] = []
    for point in sweep(name, args):
        for attr, value in point.items():
            setattr(backend, attr, value)
        metrics, counted = measure(backend, data, args.latency_budget_s)
        point_config = config | point | {"queries": len(data.queries), "latency_queries": counted}
        for metric, value in metrics.items():
            unit = UNITS[metric]
            emit(BENCH, point_config, metric, value, unit, against, baseline.get(metric))
        searched.append(metrics)
    del backend
    gc.collect()
    return built | searched[0]


def backend_params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build-time parameters worth recording in ``config``."""
    if name == "ivf":
        return {"nlist": args.nlist, "train_sample": args.ivf_train_sample}
    if name == "hnsw":
        return {"m": args.hnsw_m, "ef_construction": args.ef_construction}
    if name == "torch":
        return {"device": args.torch_device, "dtype": args.torch_dtype}
    return {}


def parse() -> argparse.Namespace:
    """CLI arguments (defaults aim at recall@10 >= 0.95 and p99 <= 5 ms at 1M on 2 cores)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,1000000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--backends", default="flat,ivf,hnsw,torch")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", default="8,16,32", help="IVF lists scanned, swept")
    parser.add_argument("--ivf-train-min", type=int, default=None)
    parser.add_argument("--ivf-train-sample", type=int, default=65_536)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", default="32,64,128", help="HNSW efSearch, swept")
    parser.add_argument("--torch-device", default=None, help="default: cuda if present")
    parser.add_argument("--torch-dtype", default=None, help="default: float16 on cuda")
    parser.add_argument("--latency-budget-s", type=float, default=30.0)
    args = parser.parse_args()
    if "torch" in args.backends:
        import torch

        cuda = torch.cuda.is_available()
        args.torch_device = args.torch_device or ("cuda" if cuda else "cpu")
        args.torch_dtype = args.torch_dtype or ("float16" if cuda else "float32")
    return args


def main() -> None:
    args = parse()
    names = [name for name in args.backends.split(",") if name != "flat"]
    for n in (int(size) for size in args.sizes.split(",")):
        data = make_data(n, args.dim, args.queries, args.seed)
        baseline = run_backend("flat", n, data, args, {})
        for name in names:
            run_backend(name, n, data, args, baseline)
        del data
        gc.collect()


if __name__ == "__main__":
    main()
