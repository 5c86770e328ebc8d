"""The dual encoder learns: MiniLM fine-tuned with InfoNCE for 12 steps on a small topic set
lowers its loss fourfold and lifts recall@1 over the untrained model, and the saved model and
its card say what was trained (about a minute of CPU: too long for the unit tier). Needs no
broker."""

from __future__ import annotations

import hashlib
import json

import pytest

from models import EncoderSettings, TextEncoder
from models.dual.trainer import DualTrainResult, train_dual_encoder
from models.encoder import MODEL_CARD_FILE
from tests.support.dual_data import fast, recall_at_1, topic_examples

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory: pytest.TempPathFactory) -> DualTrainResult:
    out = tmp_path_factory.mktemp("minilm") / "ft"
    return train_dual_encoder(topic_examples(), fast(epochs=4), out)


def test_loss_decreases_over_epochs(minilm_run: DualTrainResult) -> None:
    losses = minilm_run.epoch_losses
    assert len(losses) == 4
    assert minilm_run.steps == len(minilm_run.step_losses) == 4 * 3  # 24 queries, batch 8
    assert losses[-1] < losses[0] / 4
    assert minilm_run.examples_per_s > 0 and minilm_run.seconds > 0
    assert minilm_run.stopped_by == "epochs"
    assert minilm_run.planned_steps == 12 and minilm_run.warmup_steps == 0
    assert minilm_run.seconds_per_step > 0
    assert minilm_run.seconds_per_step * minilm_run.steps <= minilm_run.seconds
    assert minilm_run.validation == [] and minilm_run.validation_seconds == 0.0
    assert minilm_run.best_step is None and minilm_run.saved_step == 12


def test_recall_improves_over_the_untrained_model(minilm_run: DualTrainResult) -> None:
    examples = topic_examples()
    before = recall_at_1(TextEncoder.load(EncoderSettings(max_length=64)), examples)
    trained = TextEncoder.load(EncoderSettings(model_path=minilm_run.out_dir, max_length=64))
    after = recall_at_1(trained, examples)
    assert before < 0.8  # related words, not the same words: the base model is unsure
    assert after >= before + 0.2
    assert after >= 0.9


def test_saved_model_loads_with_its_version(minilm_run: DualTrainResult) -> None:
    out = minilm_run.out_dir
    assert minilm_run.model_version.startswith("all-MiniLM-L6-v2-ft-")
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert minilm_run.model_version == f"all-MiniLM-L6-v2-ft-{digest[:12]}"
    encoder = TextEncoder.load(EncoderSettings(model_path=out))
    assert encoder.model_version == minilm_run.model_version  # no "+pct": tokens are saved
    assert encoder.pooling == "mean"
    assert encoder.encode(["hello"]).shape == (1, 384)
    assert [p.name for p in out.parent.iterdir()] == ["ft"]  # no temp dir left behind


def test_model_card_records_the_run(minilm_run: DualTrainResult) -> None:
    card = json.loads((minilm_run.out_dir / MODEL_CARD_FILE).read_text())
    base = TextEncoder.load(EncoderSettings()).model_version
    assert card["model_version"] == minilm_run.model_version
    assert card["base_model_version"] == base
    assert card["pooling"] == "mean"
    assert card["temperature"] == pytest.approx(0.05)
    assert card["steps"] == 12
    assert card["settings"]["hard_negatives"] == 1
    assert card["settings"]["epochs"] == 4
    assert card["stopped_by"] == "epochs" and card["saved_step"] == 12
    assert card["validation"] is None and card["validation_history"] == []
