"""Local table state survives a restart only while it belongs to the same changelog topics."""

from __future__ import annotations

import json
from pathlib import Path

from streams.table_state import IDENTITY_FILE, keep_or_reset

IDENTITY = {"cluster": "c1", "app-posts-changelog": "t1", "app-members-changelog": "t2"}


def state(data_dir: Path) -> Path:
    db = data_dir / "v1" / "tables" / "posts-0.db"
    db.mkdir(parents=True)
    (db / "CURRENT").write_text("MANIFEST-000001")
    return db


def test_a_fresh_directory_records_the_identity(tmp_path: Path) -> None:
    data_dir = tmp_path / "prompts"
    assert keep_or_reset(data_dir, IDENTITY) is False
    assert json.loads((data_dir / IDENTITY_FILE).read_text()) == IDENTITY


def test_state_of_the_same_changelogs_is_kept(tmp_path: Path) -> None:
    keep_or_reset(tmp_path, IDENTITY)
    db = state(tmp_path)
    assert keep_or_reset(tmp_path, dict(IDENTITY)) is True
    assert (db / "CURRENT").exists()


def test_a_recreated_changelog_or_new_cluster_resets_the_state(tmp_path: Path) -> None:
    for changed in ({**IDENTITY, "app-posts-changelog": "t9"}, {**IDENTITY, "cluster": "c2"}):
        keep_or_reset(tmp_path, IDENTITY)
        db = state(tmp_path)
        assert keep_or_reset(tmp_path, changed) is False
        assert not db.exists()
        assert json.loads((tmp_path / IDENTITY_FILE).read_text()) == changed


def test_state_of_unknown_origin_is_reset(tmp_path: Path) -> None:
    db = state(tmp_path)  # e.g. written by a version that recorded no identity
    assert keep_or_reset(tmp_path, IDENTITY) is False
    assert not db.exists()


def test_a_corrupt_identity_file_resets_the_state(tmp_path: Path) -> None:
    db = state(tmp_path)
    for garbage in ("{not json", '["a", "list"]', ""):
        (tmp_path / IDENTITY_FILE).write_text(garbage)
        db = db if db.exists() else state(tmp_path)
        assert keep_or_reset(tmp_path, IDENTITY) is False
        assert not db.exists()
