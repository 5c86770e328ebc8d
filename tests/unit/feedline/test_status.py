"""``feedline status`` when nothing answers: every part says so instead of failing."""

from __future__ import annotations

from rich.console import Console

from feedline.status import LagLine, collect_status, render
from streams.local_broker import free_port


def test_unreachable_roles_and_broker_are_shown_not_raised() -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    def broken_lag() -> list[LagLine]:
        raise ConnectionError("broker down")

    report = collect_status(dead, {"embed": f"{dead}/metrics"}, broken_lag, timeout_s=0.5)
    assert [(r.name, r.up) for r in report.roles] == [("embed", False)]
    assert report.stats is None and report.lag == []
    assert report.lag_error == "ConnectionError: broker down"
    console = Console(record=True, width=160)
    console.print(render(report))
    screen = console.export_text()
    assert "down" in screen and "unreachable" in screen and "broker down" in screen
