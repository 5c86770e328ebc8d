"""``train_gr`` mechanics and GR checkpoints, at unit-test cost (seconds).

That the GR actually learns interests from history takes ~25 epochs on the tiny world: that
test is in the integration tier (``tests/integration/test_gr_training.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.errors import ModelLoadError
from models.gr.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from models.gr.model import GenerativeRecommender
from models.gr.train import train_gr
from models.gr.train_settings import GRTrainSettings
from tests.support.gr_world import CONFIG, tiny_world
from tests.unit.models.gr.gr_fixtures import random_inputs, random_model


@pytest.fixture(scope="module")
def model() -> GenerativeRecommender:
    return random_model(CONFIG)


def test_training_reports_a_loss_per_epoch_and_held_out_figures() -> None:
    dataset = tiny_world(members=60, impressions=20)
    epochs: list[tuple[int, float]] = []
    settings = GRTrainSettings(epochs=3, batch_size=8, learning_rate=3e-3, device="cpu")
    result = train_gr(dataset, CONFIG, settings, on_epoch=lambda e, loss: epochs.append((e, loss)))
    _, held_out = dataset.impressions()
    assert [e for e, _ in epochs] == [0, 1, 2]
    assert [loss for _, loss in epochs] == result.epoch_losses
    assert all(loss > 0 for loss in result.epoch_losses)
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert result.gr.impressions == result.cosine.impressions == held_out > 0
    assert 0.0 <= result.gr.auc["like"] <= 1.0 and result.seconds > 0


def test_checkpoint_round_trip_gives_identical_scores(
    model: GenerativeRecommender, tmp_path: Path
) -> None:
    version = save_checkpoint(model, tmp_path / "gr", embedding_model_version="emb-v1")
    assert version.startswith("gr-") and len(version) == 15
    loaded = load_checkpoint(tmp_path / "gr")
    assert loaded.model_version == version and loaded.embedding_model_version == "emb-v1"
    assert loaded.model.config == model.config
    inputs = random_inputs(20, 5, CONFIG, seed=1)
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model.score_candidates(inputs), loaded.model.score_candidates(inputs))
    # rewriting keeps one complete checkpoint with the same version for the same weights
    assert save_checkpoint(model, tmp_path / "gr", embedding_model_version="emb-v1") == version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gr"]


def test_broken_checkpoints_fail_with_a_clear_error(
    model: GenerativeRecommender, tmp_path: Path
) -> None:
    save_checkpoint(model, tmp_path / "gr", embedding_model_version="emb-v1")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="cuda"):
            load_checkpoint(tmp_path / "gr", "cuda")
    (tmp_path / "gr" / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="feedline train gr"):
        load_checkpoint(tmp_path / "gr")
    with pytest.raises(ModelLoadError, match=CONFIG_FILE):
        load_checkpoint(tmp_path / "missing")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_lowers_the_loss_and_scores_on_cpu() -> None:
    """bfloat16 autocast and FlexAttention on CUDA: the loss falls as on CPU, and the
    trained model loads for CPU serving."""
    dataset = tiny_world(members=60, impressions=20)
    settings = GRTrainSettings(epochs=3, batch_size=8, learning_rate=3e-3, device="cuda")
    result = train_gr(dataset, CONFIG, settings)
    assert all(torch.isfinite(torch.tensor(result.epoch_losses)))
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert next(result.model.parameters()).device.type == "cuda"
    inputs = random_inputs(30, 10, CONFIG, seed=1)
    with torch.inference_mode():
        on_cuda = result.model.score_candidates(inputs.to("cuda"), "sdpa").cpu()
        on_cpu = result.model.to("cpu").score_candidates(inputs, "sdpa")
    assert (on_cuda - on_cpu).abs().max().item() <= 1e-3
