"""``feedline eval leave-one-out``: baselines and models under the literature's protocol.

Prints one JSON line per (method, ranking): the method, its model version, the protocol it
was measured under, and HR@10 (= recall@10 with one target), NDCG@10 and recall@50.

Example::

    feedline import amazon ../shared/data/amazon_office_2014 --out .feedline/office
    feedline eval leave-one-out --data .feedline/office/train                 # baselines
    feedline eval leave-one-out --data .feedline/office/train --model .feedline/dual
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

METHODS = ("popularity", "last-item", "centroid", "prompts")


def eval_leave_one_out_command(
    data: Annotated[Path, typer.Option("--data", file_okay=False, help="training-set dir")],
    model: Annotated[
        Path | None, typer.Option(help="a fine-tuned model directory, evaluated beside the base")
    ] = None,
    stage: Annotated[str, typer.Option(help="test (last item) or valid (second-to-last)")] = "test",
    members: Annotated[
        int | None, typer.Option(min=1, help="evaluate a seeded sample of this many members")
    ] = None,
    seed: int = 0,
    ranking: Annotated[str, typer.Option(help="full, sampled or both")] = "both",
    methods: Annotated[str, typer.Option(help="comma-separated baselines to run")] = ",".join(
        METHODS
    ),
    latest_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="add each member's newest item's vector to the prompt methods' member vectors "
            "at this weight, as the query service does (FEEDLINE_SERVICE_LATEST_WEIGHT); 0: off",
        ),
    ] = 0.0,
) -> None:
    """HR@10, NDCG@10, recall@50: full ranking and 99 sampled negatives, same members."""
    from feedline import loo_eval
    from models.encoder import TextEncoder
    from models.settings import EncoderSettings
    from schemas.training_set import read_training_set

    try:
        stage_ = loo_eval.parse_stage(stage)
        rankings = loo_eval.parse_rankings(ranking)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    wanted = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(METHODS))
    if unknown:
        raise typer.BadParameter(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    training_set = read_training_set(data)
    catalog = loo_eval.catalog_of(training_set)
    heldout = loo_eval.heldout_of(training_set, catalog, stage_, members, seed)
    base = TextEncoder.load(EncoderSettings())
    tuned = TextEncoder.load(EncoderSettings(model_path=model)) if model else None
    lines = loo_eval.run_methods(heldout, catalog, base, wanted, rankings, tuned, latest_weight)
    for line in lines:
        record = {
            "data": str(data),
            "method": line.method,
            "model_version": line.model_version,
            "latest_weight": latest_weight if line.method.startswith("prompts") else None,
            "protocol": loo_eval.protocol(line.ranking, stage_, heldout, catalog),
            **line.metrics,
        }
        sys.stdout.write(json.dumps(record) + "\n")
