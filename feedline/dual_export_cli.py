"""``feedline export training-set``: the dual-encoder training set from the pipeline's topics.

A Typer command function for the ``export`` sub-app (``feedline.export_cli``), registered as::

    export_app.command("training-set")(export_training_set_command)

Kafka settings come from the environment (``FEEDLINE_KAFKA_*``), as for every role.

Example::

    feedline export training-set --out train/
    # {"path": "train", "examples": 2402, "eval_members": 158, "posts": 1000, ...}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def export_training_set_command(
    out: Annotated[
        Path, typer.Option("--out", file_okay=False, help="directory to write the set into")
    ],
    holdout_fraction: Annotated[
        float,
        typer.Option(
            "--holdout-fraction", min=0.0, max=0.99, help="last share of the time span to hold out"
        ),
    ] = 0.2,
    max_hard_negatives: Annotated[
        int, typer.Option("--max-hard-negatives", min=0, help="hard negatives kept per example")
    ] = 4,
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", min=0.1, help="give up reading after this long")
    ] = 60.0,
) -> None:
    """Write engagements, post prompts and member prompts, up to their end offsets now, as a
    dual-encoder training set (examples, posts, seen, positives, eval, manifest).

    Prints a one-line JSON summary; invalid records are skipped and counted.
    """
    from feedline.logs import log_effective_config
    from streams.settings import KafkaSettings
    from streams.training_export import export_training_set

    kafka = KafkaSettings()
    log_effective_config("export", kafka)
    result = export_training_set(
        kafka,
        out,
        holdout_fraction=holdout_fraction,
        max_hard_negatives=max_hard_negatives,
        timeout_s=timeout_s,
    )
    summary = {"path": str(out), **result._asdict()}
    sys.stdout.write(json.dumps(summary) + "\n")
