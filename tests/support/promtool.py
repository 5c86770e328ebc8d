"""Prometheus's promtool for the tests of the alert rules and the scrape config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def find_promtool() -> str:
    """The path scripts/promtool.sh finds or fetches; fails the test with its reason."""
    script = ROOT / "scripts" / "promtool.sh"
    result = subprocess.run(
        ["sh", str(script)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            "promtool could not be obtained: install Prometheus's promtool, put it on PATH or "
            f"set PROMTOOL=/path/to/promtool.\n{script} said:\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout.strip()
