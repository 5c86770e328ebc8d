"""The dual-encoder commands end to end on a small world: build a training set, evaluate,
fine-tune a few steps, evaluate the result."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import feedline.dual_validation
from feedline.cli import app
from feedline.dual_validation import Validation
from models.dual.training_examples import example_sampler
from models.encoder import MODEL_CARD_FILE, TextEncoder
from models.settings import EncoderSettings
from schemas.training_set import TrainingSet, read_training_set


def _run(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train")
    summary = _run("world", "training-set", "--out", str(out), "--members", "30", "--posts", "90")
    assert summary["examples"] > 0 and summary["eval"] > 0  # type: ignore[operator]
    return out


def test_sampler_draws_fresh_negatives_that_are_never_positives(data: Path) -> None:
    training_set = read_training_set(data)
    sample = example_sampler(training_set, hard_negatives=2, easy_negatives=3)
    first, second = sample(0, np.random.default_rng(0)), sample(1, np.random.default_rng(1))
    assert len(first) == training_set.examples.num_rows
    assert [e.easy_negatives for e in first] != [e.easy_negatives for e in second]
    prompts = _post_prompts(training_set)
    positives = _positive_prompts(training_set)
    for example in first:
        assert len(example.hard_negatives) <= 2 and len(example.easy_negatives) <= 3
        member = positives[example.query]
        assert not member & set(example.hard_negatives + example.easy_negatives)
        assert set(example.easy_negatives) <= prompts
        assert member | {example.positive} <= example.engaged <= prompts


def _post_prompts(training_set: TrainingSet) -> set[str]:
    return set(training_set.posts.column("post_prompt").to_pylist())


def _positive_prompts(training_set: TrainingSet) -> dict[str, set[str]]:
    """member prompt → prompts of every post that member engaged with positively."""
    rows = training_set.examples.to_pydict()
    prompt_of = dict(
        zip(training_set.posts.column("post_id").to_pylist(),
            training_set.posts.column("post_prompt").to_pylist(), strict=True)
    )  # fmt: skip
    positives = training_set.positives.to_pydict()
    by_member: dict[str, set[str]] = {}
    for member, post in zip(positives["member_id"], positives["post_id"], strict=True):
        by_member.setdefault(member, set()).update({prompt_of[post]})
    return {q: by_member[m] for q, m in zip(rows["member_prompt"], rows["member_id"], strict=True)}


def test_eval_train_eval(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _run("eval", "retrieval", "--data", str(data))
    for metric in ("recall_at_10", "recall_at_50", "ndcg_at_10"):
        assert 0.0 <= before[metric] <= 1.0  # type: ignore[operator]
    assert before["recall_at_50"] >= before["recall_at_10"]  # type: ignore[operator]
    monkeypatch.setenv("FEEDLINE_DUAL_TRAIN_MAX_LENGTH", "64")
    asked: list[tuple[int, int, float]] = []
    scores = iter([0.5, 0.75, 0.25])  # the step-1 weights score best

    def validation_for(
        training_set: TrainingSet, members: int, seed: int, latest_weight: float = 0.0
    ) -> Validation:
        asked.append((members, seed, latest_weight))
        return Validation("fake", lambda encoder: next(scores))

    monkeypatch.setattr(feedline.dual_validation, "validation_for", validation_for)
    out = tmp_path / "dual"
    trained = _run(
        "train", "dual-encoder", "--data", str(data), "--out", str(out),
        "--max-steps", "2", "--batch-size", "4", "--hard-negatives", "2",
        "--validate-every", "1", "--patience", "5", "--validation-members", "40",
        "--seed", "3", "--schedule", "cosine", "--warmup-steps", "1",
        "--learning-rate", "1e-4", "--freeze-layers", "2", "--max-minutes", "30",
        "--no-progress",
    )  # fmt: skip
    assert asked == [(40, 3, 0.0)]  # the prompt-alone query unless the latest weight is set
    assert trained["steps"] == 2 and trained["stopped_by"] == "max_steps"
    assert trained["validation"] == [[0, 0.5], [1, 0.75], [2, 0.25]]
    assert trained["best_step"] == trained["saved_step"] == 1 and trained["best_score"] == 0.75
    assert trained["validation_name"] == "fake"
    assert trained["s_per_step"] > 0 and trained["train_s"] > 0  # type: ignore[operator]
    assert trained["torch_threads"] == torch.get_num_threads()
    assert trained["before"] == {k: before[k] for k in trained["before"]}  # type: ignore[union-attr]
    encoder = TextEncoder.load(EncoderSettings(model_path=out))
    assert encoder.model_version == trained["model_version"]
    card = json.loads((out / MODEL_CARD_FILE).read_text())
    given = {"max_length": 64, "seed": 3, "schedule": "cosine", "warmup_steps": 1,
             "learning_rate": 1e-4, "freeze_layers": 2, "max_minutes": 30.0, "patience": 5,
             "validate_every": 1, "validation_members": 40, "progress": False}  # fmt: skip
    assert {k: card["settings"][k] for k in given} == given
    after = _run("eval", "retrieval", "--data", str(data), "--model", str(out))
    assert after["model_version"] == trained["model_version"]
    assert trained["after"] == {k: after[k] for k in trained["after"]}  # type: ignore[union-attr]


def test_training_without_a_validation_split_saves_the_last_step(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedline.dual_validation, "validation_for", lambda *a, **k: None)
    trained = _run(
        "train", "dual-encoder", "--data", str(data), "--out", str(tmp_path / "dual"),
        "--max-steps", "1", "--batch-size", "2", "--max-length", "32", "--no-evaluate",
        "--no-progress",
    )  # fmt: skip
    assert trained["steps"] == trained["saved_step"] == 1
    assert trained["validation"] == [] and trained["best_step"] is None
    assert "before" not in trained


def test_catalogue_negatives_are_embedded_at_the_start_and_every_refresh(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(feedline.dual_validation, "validation_for", lambda *a, **k: None)
    monkeypatch.setenv("FEEDLINE_DUAL_TRAIN_CATALOGUE_REFRESH_EVERY", "2")
    out = tmp_path / "dual"
    with caplog.at_level(logging.INFO, logger="models.dual.step_trainer"):
        trained = _run(
            "train", "dual-encoder", "--data", str(data), "--out", str(out),
            "--catalogue-negatives", "--max-steps", "3", "--batch-size", "2",
            "--max-length", "32", "--no-evaluate", "--no-progress",
        )  # fmt: skip
    assert trained["steps"] == 3
    posts = read_training_set(data).posts.num_rows
    refreshes = [r.getMessage() for r in caplog.records if "catalogue negatives" in r.getMessage()]
    assert refreshes == [
        f"re-embedded {posts} catalogue negatives before step {step}" for step in (0, 2)
    ]
    card = json.loads((out / MODEL_CARD_FILE).read_text())
    assert card["settings"]["catalogue_negatives"] is True
    assert card["settings"]["catalogue_refresh_every"] == 2


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--schedule", "step", "'step' is not one of"),
        ("--max-minutes", "0", "max_minutes"),  # typer allows 0; the settings refuse it
        ("--patience", "-1", "'--patience'"),
    ],
)
def test_invalid_training_options_are_refused(
    flag: str, value: str, message: str, tmp_path: Path
) -> None:
    args = ["train", "dual-encoder", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, flag, value])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "o").exists()
