"""Quality on a real dataset: import → fine-tune (time-boxed) → leave-one-out evaluation,
every method beside the same-run baselines, on the same members.

    python -m bench.real_data_quality --data ../shared/data/amazon_office_2014 --format amazon
    python -m bench.real_data_quality --data ml-latest-small --format movielens --train-minutes 5

Steps: (1) ``feedline import`` into ``--work`` (a leave-one-out training set); (2) the
baselines with the packaged encoder: popularity, last-item text neighbours, the history
centroid, and feedline's prompts untrained; (3) ``train_dual_encoder`` for at most
``--train-minutes`` with validation on the leave-one-out validation stage (early stopping,
best checkpoint kept); (4) the fine-tuned prompts; (5) the GR trained on sampled-negative
impressions (``feedline.loo_gr``), re-ranking the fine-tuned top ``--gr-candidates`` with a
blend chosen on validation. The prompt methods run twice: the prompt's vector alone, and with
the member's newest item's vector added (``+latest``, ``index_store.member_query``, what the
query service serves with ``FEEDLINE_SERVICE_LATEST_WEIGHT``), its weight chosen per model on
every validation member; the GR re-ranks the ``+latest`` retrieval. ``last-item-fine-tuned``
(the newest item's neighbours in the fine-tuned space) shows what the prompt adds to it. Each
method prints one line per ranking protocol (full ranking and the source's sampled
negatives), with HR@10, NDCG@10 and recall@50; ``baseline`` is the best baseline on that
metric under the same protocol, measured in this run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit
from feedline import loo_eval
from feedline.import_cli import REAL_DATA_HISTORY, REAL_DATA_LATEST_LINE, REAL_DATA_SUMMARY_CHARS
from feedline.loo_eval import Catalog, HeldOut, Ranking, Scorer

BENCH = "real_data_quality"
TRAINING_RECORD = "training.json"
BASELINES = (
    "popularity",
    "last-item",
    "centroid",
    "prompts-untrained",
    "prompts-untrained+latest",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument(
        "--format", choices=("amazon", "recbole", "movielens", "mind"), required=True
    )
    parser.add_argument("--work", type=Path, default=Path(".feedline/bench-real"))
    parser.add_argument("--train-minutes", type=float, default=40.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--freeze-layers", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--catalogue-negatives",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score every query against the whole catalogue (a bank re-embedded every "
        "--validate-every steps) instead of one random post per query",
    )
    parser.add_argument("--validate-every", type=int, default=40)
    parser.add_argument(
        "--train-latest-weight",
        type=float,
        default=0.0,
        help="train (and validate) the +latest query at this weight "
        "(DualTrainSettings.latest_weight); 0: the prompt alone",
    )
    parser.add_argument(
        "--reuse-training",
        action="store_true",
        help="evaluate the model and training record an earlier run left in --work instead "
        "of training again (to iterate on the GR; the import must match that run's)",
    )
    parser.add_argument("--max-steps", type=int, default=240)
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--valid-members", type=int, default=500)
    parser.add_argument("--members", type=int, default=None, help="test members (default all)")
    parser.add_argument("--gr-candidates", type=int, default=50)
    parser.add_argument("--gr-negatives", type=int, default=4)
    parser.add_argument("--gr-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history-in-prompt", type=int, default=REAL_DATA_HISTORY)
    parser.add_argument("--numbers", choices=("percentile", "raw", "none"), default="percentile")
    parser.add_argument("--summary-chars", type=int, default=REAL_DATA_SUMMARY_CHARS)
    parser.add_argument(
        "--latest-line", action=argparse.BooleanOptionalAction, default=REAL_DATA_LATEST_LINE
    )
    args = parser.parse_args()

    training_set, import_s = _import(args)
    from models.encoder import TextEncoder
    from models.settings import EncoderSettings

    catalog = loo_eval.catalog_of(training_set)
    test = loo_eval.heldout_of(training_set, catalog, "test", args.members, args.seed)
    base = TextEncoder.load(EncoderSettings())
    scorers: dict[str, Scorer] = {}
    base_items = loo_eval.encode(base, catalog.prompts, "posts")
    scorers["popularity"] = loo_eval.popularity_scorer(catalog)
    scorers["last-item"] = loo_eval.last_item_scorer(test, base_items)
    scorers["centroid"] = loo_eval.centroid_scorer(test, base_items)
    base_members = loo_eval.encode(base, test.prompts, "members")
    scorers["prompts-untrained"] = loo_eval.vector_scorer(base_members, base_items)
    valid = loo_eval.heldout_of(training_set, catalog, "valid", None, args.seed)
    base_latest = Latest.chosen(base, valid, test, base_members, base_items)
    scorers["prompts-untrained+latest"] = base_latest.test_scorer

    trained, train_info = _reused(args) if args.reuse_training else _train(args, training_set)
    tuned = TextEncoder.load(EncoderSettings(model_path=trained))
    tuned_items = loo_eval.encode(tuned, catalog.prompts, "posts")
    tuned_members = loo_eval.encode(tuned, test.prompts, "members")
    scorers["prompts-fine-tuned"] = loo_eval.vector_scorer(tuned_members, tuned_items)
    # the newest item alone, in the fine-tuned space: what the prompt adds to +latest
    scorers["last-item-fine-tuned"] = loo_eval.last_item_scorer(test, tuned_items)
    tuned_latest = Latest.chosen(tuned, valid, test, tuned_members, tuned_items)
    scorers["prompts-fine-tuned+latest"] = tuned_latest.test_scorer

    gr_info: dict[str, Any] = {}
    if args.gr_candidates > 0:
        scorers["prompts-fine-tuned+latest+gr"], gr_info = _gr(
            args, training_set, catalog, test, tuned, tuned_items, tuned_latest
        )
    config = {
        "data": str(args.data),
        "format": args.format,
        "import_s": round(import_s, 1),
        "latest_weight_untrained": base_latest.weight,
        "latest_weight_fine_tuned": tuned_latest.weight,
        "latest_weight_chosen_on": f"validation stage, all {len(valid.member_ids)} members",
        "valid_ndcg_at_10_by_latest_weight": {
            "untrained": base_latest.by_weight,
            "fine-tuned": tuned_latest.by_weight,
        },
        **train_info,
        **gr_info,
    }
    _report(loo_eval.evaluate_methods(test, scorers, ["full", "sampled"]), test, catalog, config)


@dataclass(frozen=True)
class Latest:
    """One model's ``+latest`` member vectors: the weight chosen on validation, the blended
    validation members (the GR's blend is chosen on them) and the test scorer."""

    weight: float
    by_weight: dict[str, float]
    valid_members: np.ndarray
    test_scorer: Scorer

    @classmethod
    def chosen(
        cls,
        encoder: Any,
        valid: HeldOut,
        test: HeldOut,
        test_members: np.ndarray,
        items: np.ndarray,
    ) -> Latest:
        members = loo_eval.encode(encoder, valid.prompts, "valid members")
        weight, ndcg = loo_eval.choose_latest_weight(members, valid, items)
        blended = loo_eval.latest_blended(test_members, test, items, weight)
        return cls(
            weight,
            {str(w): round(v, 4) for w, v in ndcg.items()},
            loo_eval.latest_blended(members, valid, items, weight),
            loo_eval.vector_scorer(blended, items),
        )


def _import(args: argparse.Namespace) -> tuple[Any, float]:
    from feedline.import_cli import real_data_library
    from feedline.importers.dataset import ImportReport, RowErrors
    from feedline.importers.outputs import leave_one_out_set
    from schemas.training_set import write_training_set

    started = time.perf_counter()
    dataset = readers()[args.format](args.data, RowErrors(ImportReport()))
    library, _ = real_data_library(args.history_in_prompt, args.summary_chars, args.latest_line)
    training_set = leave_one_out_set(dataset, library, args.numbers, descriptions=False)
    write_training_set(args.work / "train", training_set)
    return training_set, time.perf_counter() - started


def readers() -> dict[str, Any]:
    """Format name → ``read_<format>(directory, errors)``."""
    from feedline.importers.amazon import read_amazon
    from feedline.importers.mind import read_mind
    from feedline.importers.movielens import read_movielens
    from feedline.importers.recbole import read_recbole

    return {
        "amazon": read_amazon,
        "recbole": read_recbole,
        "movielens": read_movielens,
        "mind": read_mind,
    }


def _train(args: argparse.Namespace, training_set: Any) -> tuple[Path, dict[str, Any]]:
    from feedline.dual_validation import validation_for
    from models.dual.train_settings import DualTrainSettings
    from models.dual.trainer import train_dual_encoder
    from models.dual.training_examples import example_sampler

    easy = 0 if args.catalogue_negatives else 1  # the catalogue holds every random post
    settings = DualTrainSettings(
        max_minutes=args.train_minutes,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        freeze_layers=args.freeze_layers,
        max_length=args.max_length,
        validate_every=args.validate_every,
        max_steps=args.max_steps,
        warmup_steps=args.warmup_steps,
        progress=True,
        hard_negatives=0,
        easy_negatives=easy,
        catalogue_negatives=args.catalogue_negatives,
        catalogue_refresh_every=args.validate_every,
        latest_weight=args.train_latest_weight,
        seed=args.seed,
    )
    sampler = example_sampler(training_set, hard_negatives=0, easy_negatives=easy)
    validation = validation_for(
        training_set,
        members=args.valid_members,
        seed=args.seed,
        latest_weight=args.train_latest_weight,
    )
    out = args.work / "dual"
    catalogue = training_set.posts.column("post_prompt").to_pylist()
    result = train_dual_encoder(sampler, settings, out, validation=validation, catalogue=catalogue)
    info = {
        "train_minutes_budget": args.train_minutes,
        "train_s": round(result.seconds, 1),
        "steps": result.steps,
        "s_per_step": round(result.seconds_per_step, 2),
        "batch_size": args.batch_size,
        "stopped_by": result.stopped_by,
        "best_step": result.best_step,
        "validation": [[s, round(v, 4)] for s, v in result.validation],
        "freeze_layers": args.freeze_layers,
        "max_length": args.max_length,
        "max_steps": args.max_steps,
        "learning_rate": args.learning_rate,
        "negatives": "in-batch + whole catalogue"
        if args.catalogue_negatives
        else "in-batch + 1 random",
        "history_in_prompt": args.history_in_prompt,
        "numbers": args.numbers,
        "latest_line": args.latest_line,
        "train_latest_weight": args.train_latest_weight,
    }
    sys.stderr.write(json.dumps({"trained": info}) + "\n")
    (args.work / TRAINING_RECORD).write_text(json.dumps(info) + "\n")
    return out, info


def _reused(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The model and training record of an earlier run in ``--work``."""
    record = args.work / TRAINING_RECORD
    if not record.is_file():
        sys.exit(f"--reuse-training: no {record}; run once without it first")
    info: dict[str, Any] = json.loads(record.read_text())
    return args.work / "dual", {**info, "training": f"reused from {record}"}


def _gr(
    args: argparse.Namespace,
    training_set: Any,
    catalog: Catalog,
    test: HeldOut,
    tuned: Any,
    tuned_items: np.ndarray,
    latest: Latest,
) -> tuple[Scorer, dict[str, Any]]:
    from feedline import loo_gr
    from models.gr.config import GRConfig
    from models.gr.train import train_gr
    from models.gr.train_settings import GRTrainSettings

    authors = training_set.posts.column("author_id").to_pylist()
    posts = loo_gr.gr_catalog(catalog, tuned_items, authors)
    every_test = loo_eval.heldout_of(training_set, catalog, "test", None, args.seed)
    known = loo_gr.known_items(every_test)
    near = loo_gr.nearest_items(tuned_items, 50)
    log = loo_gr.SyntheticLog(catalog, args.gr_negatives, args.seed, known, near)
    every_valid = loo_eval.heldout_of(training_set, catalog, "valid", None, args.seed)
    config = GRConfig(embedding_dim=tuned_items.shape[1], max_history=256)
    dataset = loo_gr.training_dataset(every_valid, log, posts, config, tuned.model_version)
    started = time.perf_counter()
    result = train_gr(dataset, config, GRTrainSettings(epochs=args.gr_epochs, seed=args.seed))
    gr_s = time.perf_counter() - started
    valid = every_valid  # the blend is chosen on all members: 500 are ~20 hits, too few
    valid_retrieval = loo_eval.vector_scorer(latest.valid_members, tuned_items)
    retrieval = latest.test_scorer
    chooser = loo_gr.Reranker(result.model, log, posts, "valid")
    ndcg: dict[float, float] = {}
    for alpha in loo_gr.ALPHAS:
        blended = loo_eval.reranked_scorer(
            valid_retrieval,
            loo_gr.rerank_fn(valid, valid_retrieval, chooser, alpha),
            args.gr_candidates,
        )
        [line] = loo_eval.evaluate_methods(valid, {"v": blended}, ["full"])
        ndcg[alpha] = float(line.metrics["ndcg_at_10"])
    alpha = max(ndcg, key=lambda a: (ndcg[a], a))
    reranker = loo_gr.Reranker(result.model, log, posts, "test")
    scorer = loo_eval.reranked_scorer(
        retrieval, loo_gr.rerank_fn(test, retrieval, reranker, alpha), args.gr_candidates
    )
    info = {
        "gr_train_s": round(gr_s, 1),
        "gr_epochs": args.gr_epochs,
        "gr_negatives_per_positive": f"{args.gr_negatives} (half of them text neighbours)",
        "gr_candidates": args.gr_candidates,
        "gr_alpha": alpha,
        "gr_alpha_chosen_on": f"validation stage, all {len(every_valid.member_ids)} members",
        "gr_valid_ndcg_at_10_by_alpha": {str(a): round(v, 4) for a, v in ndcg.items()},
        "gr_heldout_auc": result.gr.as_dict().get("auc"),
    }
    return scorer, info


def _report(
    results: list[loo_eval.MethodResult], test: HeldOut, catalog: Catalog, config: dict[str, Any]
) -> None:
    by: dict[tuple[str, Ranking], dict[str, float | int]] = {
        (r.method, r.ranking): r.metrics for r in results
    }
    for result in results:
        best = max(
            (m for m in BASELINES if (m, result.ranking) in by),
            key=lambda m: float(by[m, result.ranking]["ndcg_at_10"]),
        )
        protocol = loo_eval.protocol(result.ranking, "test", test, catalog)
        emit(
            BENCH,
            {**config, "method": result.method, "protocol": protocol, **result.metrics},
            f"ndcg_at_10_{result.ranking}",
            float(result.metrics["ndcg_at_10"]),
            "ndcg",
            baseline=f"best baseline ({best})",
            baseline_value=float(by[best, result.ranking]["ndcg_at_10"]),
        )


if __name__ == "__main__":
    main()
