"""Which prompt template serves real data best, untrained: member and post prompt variants
on the leave-one-out validation stage, beside the same-run baselines.

    python -m bench.real_data_prompts --data ../shared/data/amazon_office_2014 --format amazon

Each variant renders every post and member prompt with its own settings (newest items listed
in a member prompt, characters per item, item descriptions in post prompts, how popularity
is written), embeds them with the packaged encoder and ranks the validation targets of the
same seeded ``--members`` (full ranking, history excluded). The baselines (popularity,
last-item neighbours, history centroid) use the first variant's post prompts. One line per
variant and baseline; ``baseline`` is the history centroid (the issue's bar: member prompts
at least as good as it). About 2-10 minutes per variant on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import emit
from bench.real_data_quality import readers
from feedline import loo_eval
from feedline.import_cli import (
    REAL_DATA_HISTORY,
    REAL_DATA_LATEST_LINE,
    REAL_DATA_SUMMARY_CHARS,
    real_data_library,
)

BENCH = "real_data_prompts"
VARIANTS: list[dict[str, Any]] = [
    {"history": 50, "summary": 160, "descriptions": True, "numbers": "percentile"},
    {"history": 50, "summary": 100, "descriptions": False, "numbers": "percentile"},
    {"history": 50, "summary": 100, "descriptions": False, "numbers": "none"},
    {"history": 50, "summary": 100, "descriptions": False, "numbers": "raw"},
    {"history": 10, "summary": 100, "descriptions": False, "numbers": "percentile"},
    {"history": 5, "summary": 100, "descriptions": False, "numbers": "percentile"},
    {"history": 3, "summary": 100, "descriptions": False, "numbers": "percentile"},
    {"history": REAL_DATA_HISTORY, "summary": REAL_DATA_SUMMARY_CHARS, "descriptions": False,
     "numbers": "percentile", "latest": REAL_DATA_LATEST_LINE},
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--format", choices=tuple(readers()), required=True)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=json.loads, default=VARIANTS, help="JSON list")
    args = parser.parse_args()

    from feedline.importers.dataset import ImportReport, RowErrors
    from feedline.importers.outputs import leave_one_out_set
    from models.encoder import TextEncoder
    from models.settings import EncoderSettings

    dataset = readers()[args.format](args.data, RowErrors(ImportReport()))
    encoder = TextEncoder.load(EncoderSettings())
    centroid: float | None = None
    for i, variant in enumerate(args.variants):
        library, _ = real_data_library(
            variant["history"], variant["summary"], variant.get("latest", False)
        )
        training_set = leave_one_out_set(
            dataset, library, variant["numbers"], variant["descriptions"]
        )
        catalog = loo_eval.catalog_of(training_set)
        valid = loo_eval.heldout_of(training_set, catalog, "valid", args.members, args.seed)
        items = loo_eval.encode(encoder, catalog.prompts, "posts")
        members = loo_eval.encode(encoder, valid.prompts, "members")
        scorers = {"prompts-untrained": loo_eval.vector_scorer(members, items)}
        if i == 0:
            scorers |= {
                "popularity": loo_eval.popularity_scorer(catalog),
                "last-item": loo_eval.last_item_scorer(valid, items),
                "centroid": loo_eval.centroid_scorer(valid, items),
            }
        results = loo_eval.evaluate_methods(valid, scorers, ["full"])
        by = {r.method: r.metrics for r in results}
        if "centroid" in by:
            centroid = float(by["centroid"]["ndcg_at_10"])
        for result in results:
            config = {
                "data": str(args.data),
                "method": result.method,
                "variant": variant
                if result.method == "prompts-untrained"
                else "first variant's posts",
                "protocol": loo_eval.protocol("full", "valid", valid, catalog),
                **result.metrics,
            }
            emit(
                BENCH,
                config,
                "valid_ndcg_at_10_full",
                float(result.metrics["ndcg_at_10"]),
                "ndcg",
                baseline="centroid",
                baseline_value=centroid,
            )


if __name__ == "__main__":
    main()
