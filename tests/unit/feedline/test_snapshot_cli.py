"""``feedline snapshot …`` on missing or empty inputs: a clear error, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedline.cli import app
from index_store.errors import IndexStoreError


def invoke(*args: str) -> BaseException | None:
    result = CliRunner().invoke(app, ["snapshot", *args])
    return result.exception


def test_export_without_snapshots_says_where_it_looked(tmp_path: Path) -> None:
    error = invoke("export", "--dir", str(tmp_path / "none"), "--out", str(tmp_path / "out"))
    assert isinstance(error, IndexStoreError)
    assert "no valid snapshot" in str(error) and "none" in str(error)


@pytest.mark.parametrize(
    "args", [["nearest", "--member", "m1"], ["counts"], ["drift", "--from", "a", "--to", "b"]]
)
def test_queries_before_any_export_point_at_the_export_command(
    tmp_path: Path, args: list[str]
) -> None:
    error = invoke("query", *args, "--out", str(tmp_path))
    assert isinstance(error, IndexStoreError)
    assert "feedline snapshot export" in str(error) or "two exported snapshots" in str(error)


def test_list_of_an_empty_directory_prints_an_empty_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["snapshot", "list", "--dir", str(tmp_path)])
    assert result.exit_code == 0 and "snapshot" in result.output
