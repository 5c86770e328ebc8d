"""``feedline status``: one terminal screen with the health of the whole pipeline.

Reads what the roles already expose: the query service's ``/v1/stats`` (index size,
readiness, freshness p99, model versions), every role's ``/metrics`` (up or not, DLQ counts
by topic and reason), and consumer lag from Kafka. Nothing here keeps state; each refresh
asks again.

Example::

    feedline status                  # refreshes every 2 s until Ctrl-C
    feedline status --once           # one screen, e.g. for a ticket
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table


class LagLine(NamedTuple):
    """Lag of one consumer group on one topic (summed over its partitions)."""

    group: str
    topic: str
    messages: int
    seconds: float


class RoleStatus(NamedTuple):
    """Whether a role's endpoint answered, and its DLQ counts by (topic, reason)."""

    name: str
    url: str
    up: bool
    dead_letters: dict[tuple[str, str], float]


class StatusReport(NamedTuple):
    """Everything one screen shows."""

    roles: list[RoleStatus]
    stats: dict[str, Any] | None
    rollout: dict[str, Any] | None
    lag: list[LagLine]
    lag_error: str | None
    taken_at: float


LagSource = Callable[[], list[LagLine]]


def collect_status(
    service_url: str, metrics_urls: Mapping[str, str], lag: LagSource, timeout_s: float = 2.0
) -> StatusReport:
    """Ask every endpoint once; a role that does not answer is reported down, not fatal."""
    roles = [_role(name, url, timeout_s) for name, url in metrics_urls.items()]
    stats = rollout = None
    with contextlib.suppress(httpx.HTTPError, ValueError):  # shown as "unreachable"
        stats = httpx.get(f"{service_url}/v1/stats", timeout=timeout_s).json()
        rollout = httpx.get(f"{service_url}/v1/admin/rollout", timeout=timeout_s).json()
    lag_error, lines = None, []
    try:
        lines = lag()
    except Exception as error:  # any broker failure is shown on the screen, not raised
        lag_error = f"{type(error).__name__}: {error}"
    return StatusReport(roles, stats, rollout, lines, lag_error, time.time())


def _role(name: str, url: str, timeout_s: float) -> RoleStatus:
    try:
        text = httpx.get(url, timeout=timeout_s).text
    except httpx.HTTPError:
        return RoleStatus(name, url, False, {})
    letters: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "feedline_dlq_messages_total" and sample.value:
                key = (sample.labels.get("topic", ""), sample.labels.get("reason", ""))
                letters[key] = letters.get(key, 0.0) + sample.value
    return RoleStatus(name, url, True, letters)


def render(report: StatusReport) -> Group:
    """The screen: roles, index, lag, dead letters."""
    parts = [_roles(report), _index(report.stats)]
    if report.rollout and report.rollout.get("state") not in (None, "idle"):
        parts.append(_rollout(report.rollout))
    return Group(*parts, _lag(report), _dead_letters(report))


def _rollout(rollout: dict[str, Any]) -> Table:
    table = Table(title="model rollout")
    for column in ("state", "to model", "posts", "members", "seconds"):
        table.add_column(column)
    entities = rollout.get("entities", {})

    def progress(entity: str) -> str:
        counts = entities.get(entity, {})
        return f"{counts.get('embedded', 0)}/{counts.get('target', 0)}"

    table.add_row(
        str(rollout.get("state")),
        str(rollout.get("model_version")),
        progress("post"),
        progress("member"),
        f"{rollout.get('seconds', 0.0):.1f}",
    )
    return table


def _roles(report: StatusReport) -> Table:
    table = Table(
        title=f"feedline status at {time.strftime('%H:%M:%S', time.localtime(report.taken_at))}"
    )
    for column in ("role", "endpoint", "state"):
        table.add_column(column)
    for role in report.roles:
        table.add_row(role.name, role.url, "[green]up[/green]" if role.up else "[red]down[/red]")
    return table


def _index(stats: dict[str, Any] | None) -> Table:
    table = Table(title="index (query service)")
    for column in (
        "ready",
        "posts",
        "members",
        "deleted",
        "model",
        "ranker",
        "fresh p99 post",
        "fresh p99 member",
    ):
        table.add_column(column)
    if stats is None:
        table.add_row("[red]unreachable[/red]", *[""] * 7)
        return table
    fresh = stats.get("freshness_seconds", {})
    table.add_row(
        "[green]yes[/green]" if stats.get("ready") else "[yellow]no[/yellow]",
        str(stats.get("posts")),
        str(stats.get("members")),
        str(stats.get("deleted_posts")),
        str(stats.get("model_version")),
        str(stats.get("ranker_version") or "retrieval order"),
        _seconds(fresh.get("post", {}).get("p99")),
        _seconds(fresh.get("member", {}).get("p99")),
    )
    return table


def _lag(report: StatusReport) -> Table:
    table = Table(title="consumer lag")
    for column in ("group", "topic", "messages", "oldest unconsumed"):
        table.add_column(column)
    if report.lag_error:
        table.add_row(f"[red]{report.lag_error}[/red]", "", "", "")
    for line in sorted(report.lag):
        style = "red" if line.messages else "green"
        table.add_row(
            line.group, line.topic, f"[{style}]{line.messages}[/{style}]", _seconds(line.seconds)
        )
    return table


def _dead_letters(report: StatusReport) -> Table:
    table = Table(title="dead letters (since each role started)")
    for column in ("role", "topic", "reason", "messages"):
        table.add_column(column)
    for role in report.roles:
        for (topic, reason), count in sorted(role.dead_letters.items()):
            table.add_row(role.name, topic, reason, f"{count:g}")
    return table


def _seconds(value: object) -> str:
    return f"{value:.2f} s" if isinstance(value, int | float) else "-"


def kafka_lag_source(kafka: Any) -> LagSource:
    """Lag of the pipeline's consumer groups, summed per (group, topic), read from Kafka."""
    from streams.lag import topic_lag_seconds
    from streams.lag_exporter import ConsumerLagCollector

    collector = ConsumerLagCollector(kafka, cache_s=0.0)

    def read() -> list[LagLine]:
        now_ms = int(time.time() * 1000)
        lines = []
        for reading in collector.read():
            ages = topic_lag_seconds(reading.rows, now_ms)
            totals: dict[str, int] = {}
            for row in reading.rows:
                totals[row.topic] = totals.get(row.topic, 0) + row.lag
            lines += [
                LagLine(reading.group, topic, total, ages.get(topic, float("nan")))
                for topic, total in totals.items()
            ]
        return lines

    return read
