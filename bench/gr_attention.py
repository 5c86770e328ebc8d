"""Shared-context attention on GPU: FlexAttention with a block mask vs SDPA with a dense mask.

Same inputs, same mask (history causal; candidates see the history and themselves), same
outputs (max abs difference printed). FlexAttention skips the 128x128 tiles that are fully
masked (candidate x candidate off the diagonal, and the causal upper triangle); SDPA with a
boolean mask computes every tile. Per shape: median time of ``--repeats`` calls after warm-up
(compilation), and TFLOP/s achieved counting the useful work, ``4 * B * H * Dh * allowed
pairs`` (QK^T and PV over the unmasked pairs), for both. The published custom kernel gave 2x
over SDPA; this is the open-source counterpart.

Needs CUDA (the CPU FlexAttention path is an unfused reference):

    python -m bench.gr_attention --shapes 1000x500,4000x2000,8000x4000 --batch 8
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from bench.common import emit
from models.gr.attention import attend, shared_context_mask

BENCH = "gr_attention"


def allowed_pairs(history: int, candidates: int) -> int:
    """Unmasked (query, key) pairs: the causal history triangle, then each candidate's
    history plus itself."""
    return history * (history + 1) // 2 + candidates * (history + 1)


def median_ms(fn: object, repeats: int) -> float:
    """Median CUDA-event time of ``fn()`` in milliseconds."""
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()  # type: ignore[operator]
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="1000x500,4000x2000,8000x4000", help="TxK,...")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gr_attention needs CUDA; run it on a GPU machine (see the module docstring)")
    for shape in args.shapes.split(","):
        history, candidates = (int(x) for x in shape.split("x"))
        bench_shape(history, candidates, args)


def bench_shape(history: int, candidates: int, args: argparse.Namespace) -> None:
    """Time both paths at one shape and print their lines."""
    length = history + candidates
    q, k, v = (
        torch.randn(
            args.batch,
            args.heads,
            length,
            args.head_dim,
            device="cuda",
            dtype=getattr(torch, args.dtype),
        )
        for _ in range(3)
    )
    mask = shared_context_mask(history, candidates, "cuda")

    def flex() -> torch.Tensor:
        return attend(q, k, v, history, "flex")

    def sdpa() -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    for fn in (flex, sdpa):
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    flex_ms, sdpa_ms = median_ms(flex, args.repeats), median_ms(sdpa, args.repeats)
    flops = 4 * args.batch * args.heads * args.head_dim * allowed_pairs(history, candidates)
    cfg = {
        "history": history,
        "candidates": candidates,
        "batch": args.batch,
        "heads": args.heads,
        "head_dim": args.head_dim,
        "dtype": args.dtype,
        "mask_density": round(allowed_pairs(history, candidates) / length**2, 4),
    }
    emit(BENCH, cfg, "latency", flex_ms, "ms", "sdpa_dense_mask", sdpa_ms)
    emit(BENCH, cfg, "speedup_over_sdpa", sdpa_ms / flex_ms, "x")
    tflops = (flops / flex_ms / 1e9, flops / sdpa_ms / 1e9)
    emit(BENCH, cfg, "tflops", tflops[0], "TFLOP/s", "sdpa_dense_mask", tflops[1])
    diff = float((flex().float() - sdpa().float()).abs().max())
    emit(BENCH, cfg, "max_abs_difference", diff, "output units")


if __name__ == "__main__":
    main()
