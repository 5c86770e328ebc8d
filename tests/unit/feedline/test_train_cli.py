"""``feedline train gr`` end to end on small inputs: the world (real encoder) and logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feedline.cli import app
from feedline.gr_data import log_dataset
from index_store.snapshots import SnapshotStore
from models.gr.checkpoint import load_checkpoint
from models.gr.config import GRConfig
from models.gr.dataset import DatasetError
from schemas import Engagement
from schemas.engagement_table import engagements_to_table
from tests.unit.index_store.snapshots.snapshot_tables import (
    MODEL,
    deleted_table,
    members_table,
    posts_table,
    unit_vectors,
)


def _train(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["train", "gr", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_on_a_small_world_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "gr"
    summary = _train("--out", str(out), "--members", "40", "--posts", "80", "--epochs", "2")
    checkpoint = load_checkpoint(out)
    assert summary["model_version"] == checkpoint.model_version
    assert checkpoint.embedding_model_version.startswith("all-MiniLM-L6-v2@")
    assert checkpoint.model.config.embedding_dim == 384
    assert summary["train_impressions"] > summary["heldout_impressions"] > 0  # type: ignore[operator]
    gr, cosine = summary["gr"], summary["cosine"]
    assert isinstance(gr, dict) and isinstance(cosine, dict)
    assert gr["impressions"] == cosine["impressions"] == summary["heldout_impressions"]
    assert 0.0 <= gr["ndcg_at_10"] <= 1.0 and set(gr["auc"]) == set(GRConfig().tasks)
    assert checkpoint.metadata["eval"] == gr


def _logs(tmp_path: Path) -> tuple[Path, Path]:
    """An engagement export and a snapshot holding its posts and members (dim 8)."""
    posts = [f"p{i}" for i in range(10)]
    store = SnapshotStore(tmp_path / "snapshots", keep=2)
    store.write(
        posts_table(posts, unit_vectors(10, 8)),
        members_table(["m1", "m2"], unit_vectors(2, 8, seed=1)),
        deleted_table([]),
        model_version=MODEL,
        embedding_dim=8,
        backend="flat",
        next_int_id=10,
        offsets={},
    )
    events = [
        Engagement(schema_version=1, member_id=m, post_id=p, action=a, ts_ms=1_000 * t)
        for t, (m, p, a) in enumerate(
            (m, p, a) for p in posts for m in ("m1", "m2") for a in ("impression", "click")
        )
    ]
    pq.write_table(engagements_to_table(events), tmp_path / "engagements.parquet")
    return tmp_path / "engagements.parquet", tmp_path / "snapshots"


def test_log_dataset_joins_the_export_with_the_snapshot_vectors(tmp_path: Path) -> None:
    engagements, snapshots = _logs(tmp_path)
    config = GRConfig(embedding_dim=8, d_model=16, n_heads=2)
    dataset = log_dataset(engagements, snapshots, config, holdout_fraction=0.2)
    assert dataset.embedding_model_version == MODEL
    assert [s.member_id for s in dataset.sequences] == ["m1", "m2"]
    first = dataset.sequences[0]
    assert len(first.post_rows) == 20 and (first.post_rows >= 0).all()
    assert first.labels[:, config.tasks.index("click")].sum() == 10  # every impression clicked
    assert np.linalg.norm(first.profile) == pytest.approx(1.0, abs=1e-5)
    train, held = dataset.impressions()
    assert train + held == 20 and held > 0


def test_training_inputs_that_cannot_work_fail_clearly(tmp_path: Path) -> None:
    engagements, _ = _logs(tmp_path)
    config = GRConfig(embedding_dim=8, d_model=16, n_heads=2)
    with pytest.raises(DatasetError, match="no complete index snapshot"):
        log_dataset(engagements, tmp_path / "empty", config, holdout_fraction=0.2)
    result = CliRunner().invoke(app, ["train", "gr", "--out", str(tmp_path / "x"),
                                      "--engagements", str(engagements)])  # fmt: skip
    assert result.exit_code != 0 and "--snapshots" in result.output
