"""``feedline export …``: copy data out of Kafka for offline work, e.g. training the ranker.

Kafka settings come from the environment (``FEEDLINE_KAFKA_*``), as for every role.

Example::

    feedline export engagements --out engagements.parquet
    # {"path": "engagements.parquet", "rows": 120345, "skipped": 2, "partitions": 4, ...}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

export_app = typer.Typer(no_args_is_help=True, help="Export topics to files for offline use.")


@export_app.callback()
def export_callback() -> None:
    """Export topics to files for offline use."""  # keeps `engagements` a sub-command


@export_app.command("engagements")
def export_engagements_command(
    out: Annotated[Path, typer.Option("--out", dir_okay=False, help="Parquet file to write")],
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", min=0.1, help="give up reading after this long")
    ] = 60.0,
) -> None:
    """Write the engagements topic, up to its end offsets now, to Parquet sorted by ts_ms.

    Prints a one-line JSON summary; invalid records are skipped and counted.
    """
    from feedline.logs import log_effective_config
    from streams.engagement_export import export_engagements
    from streams.settings import KafkaSettings
    from streams.topics import ENGAGEMENTS

    kafka = KafkaSettings()
    log_effective_config("export", kafka)
    result = export_engagements(kafka, out, timeout_s=timeout_s)
    summary = {"path": str(out), "topic": kafka.topic(ENGAGEMENTS.name), **result._asdict()}
    sys.stdout.write(json.dumps(summary) + "\n")
