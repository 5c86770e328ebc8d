"""How far KLL percentiles are from exact ones: max percentile error on 1M values.

For each distribution, 1M values go into a ``PercentileSketch`` (k=200); for 2,000 query
values spread over the distribution, the sketch's percentile is compared with the exact one
(computed with numpy over the sorted values). The baseline is the sketch's own guarantee: its
normalised rank error at 99% confidence, in percentile points.

    python -m bench.sketch_accuracy [--values 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import emit
from processors.percentiles import DEFAULT_K, PercentileSketch, to_percentile


def distributions(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Shapes engagement counts take: heavy-tailed, tied integers, and smooth."""
    return {
        "lognormal_counts": np.floor(rng.lognormal(2.0, 1.5, n)),
        "zipf_counts": np.minimum(rng.zipf(1.6, n), 10**7).astype(np.float64),
        "uniform": rng.uniform(0, 1000, n),
    }


def exact_ranks(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Share of values <= each query."""
    return np.searchsorted(sorted_values, queries, side="right") / len(sorted_values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    for name, values in distributions(args.values, rng).items():
        began = time.perf_counter()
        sketch = PercentileSketch.of(values, k=DEFAULT_K)
        build_s = time.perf_counter() - began
        queries = np.quantile(values, np.linspace(0, 1, 2_000))
        ranks = exact_ranks(np.sort(values.astype(np.float32)), queries.astype(np.float32))
        exact = np.array([to_percentile(r) for r in ranks])
        estimated_ranks = np.array([sketch.rank(q) for q in queries])
        estimated = np.array([to_percentile(r) for r in estimated_ranks])
        config = {"values": args.values, "k": DEFAULT_K, "distribution": name, "queries": 2_000}
        bound = 100 * sketch.normalized_rank_error()
        emit(
            "sketch_accuracy",
            config,
            "max_percentile_error",
            float(np.abs(estimated - exact).max()),
            "percentile points",
            "KLL 99% rank-error bound",
            bound,
        )
        emit(
            "sketch_accuracy",
            config,
            "max_rank_error",
            100 * float(np.abs(estimated_ranks - ranks).max()),
            "percentage points",
            "KLL 99% rank-error bound",
            bound,
        )
        emit(
            "sketch_accuracy",
            config,
            "mean_percentile_error",
            float(np.abs(estimated - exact).mean()),
            "percentile points",
        )
        emit(
            "sketch_accuracy",
            config,
            "sketch_bytes",
            len(sketch.to_b64()) * 3 / 4,
            "bytes",
            "exact float32 array",
            values.size * 4,
        )
        emit("sketch_accuracy", config, "build_seconds", build_s, "s")


if __name__ == "__main__":
    main()
