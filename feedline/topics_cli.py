"""``feedline topics describe``: partitions per topic, owners per consumer group, warnings.

Prints two tables (topics; then each pipeline group's members and the partitions each owns)
and the warnings, or one JSON object with ``--json``. Exits 1 with ``--strict`` when there is
any warning (for a deployment check), else 0.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from streams.topic_report import TopicsReport

PIPED_WIDTH = 200


def topics_describe(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    strict: Annotated[bool, typer.Option(help="exit 1 when there is any warning")] = False,
) -> None:
    """Partitions of every catalog topic, who owns which partition in each pipeline group,
    and what is wrong (more members than partitions, unread or doubly owned partitions,
    co-partitioned topics that differ)."""
    from streams.lag_exporter import LagExporterSettings, pipeline_groups
    from streams.settings import KafkaSettings
    from streams.topic_report import describe_topics

    kafka = KafkaSettings()
    report = describe_topics(kafka, pipeline_groups(kafka), LagExporterSettings().timeout_s)
    if as_json:
        typer.echo(json.dumps(report_json(report)))
    else:
        console = Console()
        if not console.is_terminal:
            console.width = PIPED_WIDTH
        console.print(report_view(report))
    if strict and report.warnings:
        raise typer.Exit(1)


def report_json(report: TopicsReport) -> dict[str, Any]:
    """The report as plain JSON types: partitions as ``"topic[p]"``."""
    return {
        "topics": [row._asdict() for row in report.topics],
        "groups": [
            {
                "group": g.group,
                "state": g.state,
                "members": [
                    {**m._asdict(), "partitions": [f"{t}[{p}]" for t, p in m.partitions]}
                    for m in g.members
                ],
                "owners": {f"{t}[{p}]": list(who) for (t, p), who in g.owners.items()},
                "warnings": list(g.warnings),
            }
            for g in report.groups
        ],
        "warnings": report.warnings,
    }


def report_view(report: TopicsReport) -> RenderableType:
    """The topics table, one table per group, then the warnings (or "no warnings")."""
    topics = Table(title="topics")
    for column in ("topic", "partitions", "cleanup", "key", "co-partitioned with"):
        topics.add_column(column)
    for row in report.topics:
        count = "missing" if row.partitions is None else str(row.partitions)
        topics.add_row(
            row.cluster_name, count, row.cleanup, row.key, ", ".join(row.co_partitioned_with)
        )
    parts: list[RenderableType] = [topics]
    for group in report.groups:
        table = Table(title=f"group {group.group} ({group.state}, {len(group.members)} members)")
        for column in ("member", "client", "host", "partitions owned"):
            table.add_column(column)
        for member in group.members:
            owned = ", ".join(f"{t}[{p}]" for t, p in member.partitions) or "none"
            table.add_row(member.member_id, member.client_id, member.host, owned)
        parts.append(table)
    lines = report.warnings or ["no warnings"]
    style = "yellow" if report.warnings else "green"
    parts += [Text(f"warning: {w}" if report.warnings else w, style=style) for w in lines]
    return Group(*parts)
