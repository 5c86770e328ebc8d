"""The published dual-encoder ablations, reproduced on the synthetic world.

Prints our figures beside the published ones (LinkedIn 2026), each as a bench line whose
baseline is the variant the paper compares against, measured in the same run:

1. numbers: raw counts vs percentile tokens in post prompts. Popularity correlation (Pearson
   r between post popularity and member-post cosine) and recall@10 after the same training.
   Published: r -0.004 with raw counts, 30x higher with percentiles; recall@10 +15%.
2. hard negatives per member: 0 vs 1 vs 2 (plus one easy negative and in-batch negatives).
   Published: recall@10 +2.0% (one), +3.6% (two).
3. member history: every impression vs positively engaged posts only. Tokens per sequence
   (memory), sequences per batch at a fixed token budget, and forward+backward step time,
   with prompts rendered up to the model's 512 positions. Published: -37% memory per
   sequence, 40% more sequences per batch, 2.6x faster steps.

Every variant trains the same number of steps from the same seed (``--steps``, ``--batch``).
On a 2-core CPU a step takes about 9 s, so the default run is short (a fraction of an epoch)
and its quality deltas are noisy; on a GPU raise ``--steps``. Training sets come from
``feedline.dual_data.world_training_set``; evaluation from ``feedline.dual_eval``.

    python -m bench.dual_ablation                      # CPU: 30 steps per variant (~25 min)
    python -m bench.dual_ablation --steps 300 --batch 32 --device cuda
    python -m bench.dual_ablation --only history       # the memory/throughput part (~2 min)
    python -m bench.dual_ablation --data my-train/     # hard negatives 0/1/2 on your own set

With ``--data`` (a directory in the documented layout, e.g. from ``feedline export
training-set``) only the hard-negative ablation runs: the other two need to re-render prompts,
which only the synthetic world can do.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import emit
from feedline.dual_cli import default_library
from feedline.dual_data import WorldMemberPrompts, world_training_set
from feedline.dual_eval import evaluate_retrieval
from feedline.world import WorldConfig, generate_world
from models.dual.retrieval_eval import RetrievalReport
from models.dual.train_settings import DualTrainSettings
from models.dual.trainer import train_dual_encoder
from models.dual.training_examples import example_sampler
from models.encoder import TextEncoder, load_tokenizer
from models.settings import EncoderSettings
from processors.prompts import PromptConfig, PromptLibrary
from processors.token_budget import TokenMeter
from schemas.training_set import TrainingSet, read_training_set

BENCH = "dual_ablation"
TOKEN_BUDGET_PER_BATCH = 16_384


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", choices=["numbers", "hard", "history"], default=None)
    parser.add_argument("--data", type=Path, default=None, help="a training-set directory")
    args = parser.parse_args()
    if args.data is not None:
        training_ablations({"percentile": read_training_set(args.data)}, args)
        return
    world = generate_world(WorldConfig(seed=args.seed))
    library = default_library()
    if args.only in (None, "history"):
        history_ablation(world, args)
    if args.only == "history":
        return
    sets = {n: world_training_set(world, library, numbers=n) for n in ("percentile", "raw")}
    training_ablations(sets, args)


def training_ablations(sets: dict[str, TrainingSet], args: argparse.Namespace) -> None:
    """Train and evaluate the variants of ``args.only`` (both when None) and print the
    comparisons; ``sets`` maps number format to training set."""
    only = "hard" if args.data is not None else args.only
    with tempfile.TemporaryDirectory(prefix="dual-ablation-") as tmp:
        trained = {
            name: _train_and_eval(sets[numbers], hard, Path(tmp) / name, args)
            for name, numbers, hard in _variants(only)
        }
    source = str(args.data) if args.data is not None else f"world seed {args.seed}"
    cfg = {"data": source, "steps": args.steps, "batch": args.batch}
    if "raw_h1" in trained:
        raw, pct = trained["raw_h1"], trained["pct_h1"]
        r_pct, r_raw = pct.popularity_correlation, raw.popularity_correlation
        emit(BENCH, {**cfg, "published": "-0.004 -> 30x"}, "popularity_correlation_percentile",
             r_pct, "pearson_r", "raw_counts", r_raw)  # fmt: skip
        emit(BENCH, {**cfg, "published": "+15%"}, "recall_at_10_percentile", pct.recall_at_10,
             "recall", "raw_counts", raw.recall_at_10)  # fmt: skip
    if "pct_h0" in trained:
        base = trained["pct_h0"]
        for name, published in (("pct_h1", "+2.0%"), ("pct_h2", "+3.6%")):
            emit(BENCH, {**cfg, "published": published}, f"recall_at_10_{name[-2:]}",
                 trained[name].recall_at_10, "recall", "h0", base.recall_at_10)  # fmt: skip


def _variants(only: str | None) -> list[tuple[str, str, int]]:
    numbers = [("pct_h1", "percentile", 1), ("raw_h1", "raw", 1)]
    hard = [("pct_h0", "percentile", 0), ("pct_h1", "percentile", 1), ("pct_h2", "percentile", 2)]
    chosen = {"numbers": numbers, "hard": hard}.get(only or "", numbers + hard)
    return list(dict.fromkeys(chosen))


def _train_and_eval(
    training_set: TrainingSet, hard: int, out: Path, args: argparse.Namespace
) -> RetrievalReport:
    settings = DualTrainSettings(
        hard_negatives=hard,
        easy_negatives=1,
        batch_size=args.batch,
        max_steps=args.steps,
        epochs=1,
        learning_rate=args.learning_rate,
        warmup_steps=max(1, args.steps // 10),
        schedule="constant",  # the figures in the README were measured with it
        progress=False,
        device=args.device,
    )
    sampler = example_sampler(training_set, hard_negatives=hard, easy_negatives=1)
    result = train_dual_encoder(sampler, settings, out)
    report = evaluate_retrieval(training_set, TextEncoder.load(EncoderSettings(model_path=out)))
    numbers = training_set.manifest.numbers
    cfg = {"numbers": numbers, "hard_negatives": hard, "steps": result.steps, "batch": args.batch,
           "train_s": round(result.seconds, 1), "loss_first": round(result.step_losses[0], 4),
           "loss_last": round(result.step_losses[-1], 4)}  # fmt: skip
    untrained = _untrained(training_set)
    for metric in ("recall_at_10", "recall_at_50", "ndcg_at_10", "popularity_correlation"):
        emit(BENCH, cfg, f"trained_{metric}", getattr(report, metric), "value", "untrained",
             getattr(untrained, metric))  # fmt: skip
    return report


_UNTRAINED: dict[int, RetrievalReport] = {}


def _untrained(training_set: TrainingSet) -> RetrievalReport:
    """The packaged model on ``training_set``, evaluated once per set."""
    key = id(training_set)
    if key not in _UNTRAINED:
        _UNTRAINED[key] = evaluate_retrieval(training_set, TextEncoder.load(EncoderSettings()))
    return _UNTRAINED[key]


def history_ablation(world: object, args: argparse.Namespace) -> None:
    """Tokens per member sequence, sequences per batch and step time: all vs positive."""
    tokenizer, _ = load_tokenizer(EncoderSettings())
    config = PromptConfig(token_budget=512, history_in_prompt=500)
    library = PromptLibrary(config, TokenMeter(tokenizer))
    encoder = TextEncoder.load(EncoderSettings(max_length=512), backend="transformers")  # trains
    examples = world_training_set(world, default_library()).examples  # type: ignore[arg-type]
    rows = np.linspace(0, examples.num_rows - 1, 64).astype(np.int64)  # spread over time
    sample = examples.take(rows).to_pydict()
    figures = {}
    for mode in ("positive", "all"):
        prompts = WorldMemberPrompts(world, library, mode)  # type: ignore[arg-type]
        texts = [
            prompts.prompt(m, ts, p) or ""
            for m, ts, p in zip(
                sample["member_id"], sample["ts_ms"], sample["post_id"], strict=True
            )
        ]
        tokens = float(np.mean(encoder.token_lengths(texts)))
        figures[mode] = (tokens, _step_seconds(encoder, texts[:16]))
    (pos_tokens, pos_step), (all_tokens, all_step) = figures["positive"], figures["all"]
    cfg = {"seed": args.seed, "sequences": len(rows), "max_positions": 512,
           "token_budget_per_batch": TOKEN_BUDGET_PER_BATCH}  # fmt: skip
    emit(BENCH, {**cfg, "published": "-37%"}, "tokens_per_sequence_positive_only", pos_tokens,
         "tokens", "all_impressions", all_tokens)  # fmt: skip
    emit(BENCH, {**cfg, "published": "+40%"}, "sequences_per_batch_positive_only",
         TOKEN_BUDGET_PER_BATCH // pos_tokens, "sequences", "all_impressions",
         TOKEN_BUDGET_PER_BATCH // all_tokens)  # fmt: skip
    emit(BENCH, {**cfg, "published": "2.6x faster", "batch": 16}, "step_seconds_positive_only",
         pos_step, "s", "all_impressions", all_step)  # fmt: skip


def _step_seconds(encoder: TextEncoder, texts: list[str], repeats: int = 2) -> float:
    """Median forward+backward time of one batch of ``texts`` through the encoder."""
    model = encoder.model
    model.train()
    batch = encoder.tokenizer(texts, padding=True, truncation=True, max_length=512,
                              return_tensors="pt")  # fmt: skip
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        hidden = model(**batch).last_hidden_state
        hidden.float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    model.eval()
    torch.set_grad_enabled(True)
    return float(np.median(times))


if __name__ == "__main__":
    main()
