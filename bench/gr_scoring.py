"""Shared-context multi-item scoring vs scoring each candidate separately (the GR ranker).

For each K in ``--candidates``: one member with a ``--history``-step history and K candidates.
Shared context encodes ``[history, c_1..c_K]`` once with the multi-item mask; the baseline runs
K sequences ``[history, c_k]`` (in batches of ``--separate-batch``), as a ranker without the
mask must. Both give the same scores (checked here, max abs difference printed). Metric:
candidates scored per second (median of ``--repeats`` shared runs; the baseline runs once per
K after a one-batch warm-up, since it takes seconds). Model: the default ``GRConfig``.

    python -m bench.gr_scoring                                  # CPU: K = 100, 500
    python -m bench.gr_scoring --device cuda --attention flex   # on a lent GPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.common import emit
from models.gr.attention import AttentionImpl
from models.gr.config import GRConfig
from models.gr.model import GenerativeRecommender, GRInputs
from models.gr.scoring import one_per_row

BENCH = "gr_scoring"


def random_request(config: GRConfig, history: int, candidates: int) -> GRInputs:
    """A seeded request of the default shapes (values do not change the work)."""
    g = torch.Generator().manual_seed(history + candidates)
    length = history + candidates
    return GRInputs(
        post_emb=torch.nn.functional.normalize(
            torch.randn(1, length, config.embedding_dim, generator=g), dim=-1
        ),
        action=torch.randint(0, len(config.actions), (1, length), generator=g),
        gap=torch.randint(0, config.gap_buckets, (1, length), generator=g),
        device=torch.randint(0, len(config.devices) + 1, (1, length), generator=g),
        affinity=torch.rand(1, length, config.affinity_dim, generator=g),
        profile=torch.nn.functional.normalize(
            torch.randn(1, config.embedding_dim, generator=g), dim=-1
        ),
        history_len=history,
    )


def timed(fn: object, device: torch.device) -> tuple[float, torch.Tensor]:
    """(seconds, result) of ``fn()``, synchronised on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()  # type: ignore[operator]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


@torch.inference_mode()
def separately(
    model: GenerativeRecommender, inputs: GRInputs, batch: int, impl: AttentionImpl
) -> torch.Tensor:
    """(K, N) scores from K sequences ``[history, candidate]``."""
    rows = one_per_row(inputs)
    parts = []
    for lo in range(0, rows.action.shape[0], batch):
        chunk = rows.batch_slice(lo, lo + batch)
        parts.append(model.score_candidates(chunk, impl)[:, 0])
    return torch.cat(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, default=1_000)
    parser.add_argument("--candidates", default="100,500")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--separate-batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--attention", default="auto", choices=["auto", "sdpa", "flex"])
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = GRConfig(dropout=0.0)
    model = GenerativeRecommender(config)
    with torch.no_grad():  # random weights of trained-model size, so scores differ per candidate
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    model = model.to(device).eval()
    for k in (int(c) for c in args.candidates.split(",")):
        inputs = random_request(config, args.history, k).to(device)
        with torch.inference_mode():
            model.score_candidates(inputs, args.attention)  # warm-up (compiles flex on CUDA)
            runs = [
                timed(lambda x=inputs: model.score_candidates(x, args.attention), device)
                for _ in range(args.repeats)
            ]
        shared_s, shared = statistics.median(t for t, _ in runs), runs[0][1][0]
        head = inputs.first_candidates(min(k, args.separate_batch))
        separately(model, head, args.separate_batch, args.attention)
        separate_s, alone = timed(
            lambda x=inputs: separately(model, x, args.separate_batch, args.attention), device
        )
        cfg = {
            "history": args.history,
            "candidates": k,
            "d_model": config.d_model,
            "layers": config.n_layers,
            "device": device.type,
            "attention": args.attention,
        }
        emit(
            BENCH, cfg, "candidates_per_s", k / shared_s, "candidates/s", "separate", k / separate_s
        )
        emit(BENCH, cfg, "shared_latency", shared_s * 1000, "ms", "separate", separate_s * 1000)
        max_diff = float((shared - alone).abs().max())
        emit(BENCH, cfg, "max_abs_score_difference", max_diff * 1e6, "1e-6 probability")


if __name__ == "__main__":
    main()
