"""Exact torch scan (``TorchScanBackend``) against its memory-bandwidth floor.

Per size, ``n`` seeded clustered unit vectors are stored in ``--dtype``; then, over
``--queries`` queries: single-query latency p50/p99 (ms, one query per call after a
warm-up, synchronised) and batched QPS (batches of ``--batch``). An exact scan must read
every stored vector once per call, so the floor is bytes scanned / memory bandwidth:

- CUDA: ``n * dim * itemsize / --hbm-gbps`` (default 3350 GB/s, the H100 SXM's HBM3 peak;
  use ~2000 for H100 PCIe, 4800 for H200). Batched floor QPS = batch / floor time.
- CPU: the bandwidth is measured in the same run as the time torch takes to sum the same
  storage tensor (a read of every byte), since no nominal figure fits every machine.

CUDA sizes need CUDA; on CPU only float32 at small sizes runs:

    python -m bench.torch_scan --sizes 1000000,10000000 --dtype float16      # GPU
    python -m bench.torch_scan --sizes 200000 --dtype float32                 # CPU
"""

from __future__ import annotations

import argparse
import time
from typing import cast

import numpy as np
import torch

from bench.common import emit
from bench.vectors import iter_clustered_unit_vectors, queries_like
from index_store.backends.torch_scan import TorchDtype, TorchScanBackend

BENCH = "torch_scan"
WARMUP = 10
CPU_MAX_SIZE = 2_000_000


def sync(device: torch.device) -> None:
    """Wait for queued kernels, so timings cover the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fill(n: int, dim: int, device: str, dtype: str) -> TorchScanBackend:
    """A backend holding ``n`` vectors under ids 0..n-1, sized up front (no doubling copies)."""
    backend = TorchScanBackend(dim, device, cast(TorchDtype, dtype), capacity=n)
    start = 0
    for chunk in iter_clustered_unit_vectors(n, dim, seed=0):
        backend.add(np.arange(start, start + len(chunk), dtype=np.int64), chunk)
        start += len(chunk)
    return backend


def latencies_ms(backend: TorchScanBackend, queries: np.ndarray) -> np.ndarray:
    """Per-call ms of one-query searches (results copied to the host, as a caller needs)."""
    for query in queries[:WARMUP]:
        backend.search(query[None], 10)
    times = []
    for query in queries:
        began = time.perf_counter()
        backend.search(query[None], 10)
        times.append((time.perf_counter() - began) * 1e3)
    return np.array(times)


def batched_qps(backend: TorchScanBackend, queries: np.ndarray, batch: int) -> float:
    """Queries per second in batches of ``batch`` over every query (at least one batch)."""
    backend.search(queries[:batch], 10)  # warm-up
    done, began = 0, time.perf_counter()
    for start in range(0, max(len(queries) - batch + 1, 1), batch):
        backend.search(queries[start : start + batch], 10)
        done += len(queries[start : start + batch])
    return done / (time.perf_counter() - began)


def bandwidth_gbps(backend: TorchScanBackend, args: argparse.Namespace) -> tuple[float, str]:
    """The bandwidth the floor uses, and where it came from."""
    if backend.device.type == "cuda":
        return args.hbm_gbps, f"nominal HBM {args.hbm_gbps:g} GB/s (--hbm-gbps)"
    stored = backend._x[: len(backend)]
    stored.sum()  # warm-up
    began = time.perf_counter()
    for _ in range(3):
        stored.sum()
    seconds = (time.perf_counter() - began) / 3
    measured = stored.numel() * stored.element_size() / seconds / 1e9
    return measured, f"measured CPU read bandwidth {measured:.1f} GB/s (torch sum of storage)"


def run(n: int, args: argparse.Namespace) -> None:
    """Fill, time and emit one size."""
    backend = fill(n, args.dim, args.device, args.dtype)
    queries = queries_like(args.queries, args.dim, seed=0)
    sync(backend.device)
    gbps, source = bandwidth_gbps(backend, args)
    scanned = n * args.dim * backend._x.element_size()
    floor_ms = scanned / (gbps * 1e9) * 1e3
    config = {
        "n": n,
        "dim": args.dim,
        "dtype": args.dtype,
        "device": args.device,
        "queries": args.queries,
        "bandwidth": source,
        "bytes_scanned": scanned,
    }
    times = latencies_ms(backend, queries)
    baseline = "memory-bandwidth floor"
    for metric, value in (
        ("latency_p50_ms", np.percentile(times, 50)),
        ("latency_p99_ms", np.percentile(times, 99)),
    ):
        emit(BENCH, config, metric, float(value), "ms", baseline, floor_ms)
    qps = batched_qps(backend, queries, args.batch)
    emit(
        BENCH,
        config | {"batch": args.batch},
        "batched_qps",
        qps,
        "queries/s",
        baseline,
        args.batch / floor_ms * 1e3,
    )


def parse() -> argparse.Namespace:
    """CLI arguments; refuses CUDA-sized runs on a machine without CUDA."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hbm-gbps", type=float, default=3350.0)
    args = parser.parse_args()
    args.sizes = [int(size) for size in args.sizes.split(",")]
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cpu" and (args.dtype != "float32" or max(args.sizes) > CPU_MAX_SIZE):
        raise SystemExit(
            f"bench.torch_scan: CUDA is not available, and --sizes {max(args.sizes)} "
            f"--dtype {args.dtype} is a GPU run; on CPU use e.g. --sizes 200000 --dtype float32 "
            f"(at most {CPU_MAX_SIZE:,} vectors, float32)"
        )
    return args


def main() -> None:
    args = parse()
    for n in args.sizes:
        run(n, args)


if __name__ == "__main__":
    main()
