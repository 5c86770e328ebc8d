"""``feedline lag``: the pipeline's consumer-group lag as a table, or as a Prometheus exporter.

``feedline lag`` prints one table, ``feedline lag --watch`` refreshes it until Ctrl-C,
``feedline lag serve`` runs the exporter (``streams.lag_exporter``). Groups and topics are
the pipeline's (``pipeline_groups``), read with the same ``FEEDLINE_*`` settings as the roles.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from streams.lag import GroupLag, GroupSpec, OffsetsSource

lag_app = typer.Typer(help="Consumer-group lag of the pipeline: a table, or a /metrics exporter.")
PIPED_WIDTH = 200  # rich wraps at 80 columns off a terminal; group and topic names are long


@lag_app.callback(invoke_without_command=True)
def lag(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option(help="refresh until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between refreshes")] = 2.0,
) -> None:
    """Print each pipeline consumer group's lag per partition (messages and seconds)."""
    if ctx.invoked_subcommand is not None:
        return
    from streams.lag import KafkaOffsetsSource
    from streams.lag_exporter import LagExporterSettings, pipeline_groups
    from streams.settings import KafkaSettings

    kafka = KafkaSettings()
    source = KafkaOffsetsSource(kafka, LagExporterSettings().timeout_s)
    groups = pipeline_groups(kafka)
    console = Console()
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    if not watch:
        console.print(lag_table(_read(source, groups), time.time()))
        return
    _watch(console, source, groups, interval)


@lag_app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Serve the lag of the pipeline's groups at /metrics until SIGTERM."""
    from feedline.logs import log_effective_config
    from streams.lag_exporter import LagExporterSettings, run_lag_exporter
    from streams.settings import KafkaSettings

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    kafka, settings = KafkaSettings(), LagExporterSettings().model_copy(update=overrides)
    log_effective_config("lag", kafka, settings)
    run_lag_exporter(kafka, settings)


def lag_table(readings: list[GroupLag], now_s: float) -> Table:
    """One row per (group, partition); a group with nothing to report gets one row saying so."""
    from streams.lag import row_lag_seconds

    table = Table(title="consumer lag")
    for name in ("group", "members", "topic", "partition", "committed", "end"):
        table.add_column(name, no_wrap=True)
    table.add_column("lag (messages)", justify="right")
    table.add_column("lag (seconds)", justify="right")
    now_ms = int(now_s * 1000)
    for reading in readings:
        members = str(reading.members)
        if not reading.rows:
            table.add_row(reading.group, members, "-", "-", "-", "-", "-", "-", end_section=True)
        for i, row in enumerate(reading.rows):
            seconds = row_lag_seconds(row, now_ms)
            table.add_row(
                reading.group,
                members,
                row.topic,
                str(row.partition),
                "-" if row.committed is None else str(row.committed),
                str(row.latest),
                str(row.lag),
                "?" if seconds is None else f"{seconds:.1f}",
                end_section=i == len(reading.rows) - 1,
            )
    return table


def _read(source: OffsetsSource, groups: list[GroupSpec]) -> list[GroupLag]:
    from streams.lag import measure_group

    counts = source.partition_counts()
    return [measure_group(source, spec, counts) for spec in groups]


def _watch(
    console: Console, source: OffsetsSource, groups: list[GroupSpec], interval: float
) -> None:
    from rich.live import Live

    from streams.lag import LagReadError

    with Live(console=console, auto_refresh=False) as live:
        try:
            while True:
                try:
                    view: RenderableType = lag_table(_read(source, groups), time.time())
                except LagReadError as error:  # keep watching: the broker may come back
                    view = Text(f"lag not read: {error}", style="red")
                live.update(view, refresh=True)
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
