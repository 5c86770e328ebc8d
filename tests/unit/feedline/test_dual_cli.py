"""The dual-encoder commands end to end on a small world: build a training set, evaluate,
fine-tune a few steps, evaluate the result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from feedline.cli import app
from models.dual.training_examples import example_sampler
from models.encoder import TextEncoder
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
    out = tmp_path / "dual"
    trained = _run(
        "train", "dual-encoder", "--data", str(data), "--out", str(out),
        "--max-steps", "2", "--batch-size", "4", "--hard-negatives", "2",
    )  # fmt: skip
    assert trained["steps"] == 2
    assert trained["before"] == {k: before[k] for k in trained["before"]}  # type: ignore[union-attr]
    encoder = TextEncoder.load(EncoderSettings(model_path=out))
    assert encoder.model_version == trained["model_version"]
    after = _run("eval", "retrieval", "--data", str(data), "--model", str(out))
    assert after["model_version"] == trained["model_version"]
    assert trained["after"] == {k: after[k] for k in trained["after"]}  # type: ignore[union-attr]
