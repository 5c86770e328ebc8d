"""The GR learns interests from history on the tiny world (about 20 s of CPU: too long for
the unit tier). Needs no broker."""

from __future__ import annotations

import pytest

from models.gr.train import train_gr
from models.gr.train_settings import GRTrainSettings
from tests.support.gr_world import CONFIG, tiny_world

pytestmark = pytest.mark.integration


def test_loss_decreases_and_the_gr_learns_interests_from_history() -> None:
    dataset = tiny_world()
    settings = GRTrainSettings(epochs=40, batch_size=4, learning_rate=3e-3, device="cpu")
    result = train_gr(dataset, CONFIG, settings)
    train, held_out = dataset.impressions()
    assert train > 1_000 and held_out > 300
    assert result.epoch_losses[-1] < 0.8 * result.epoch_losses[0]
    # matching candidates against liked history posts is learnt after a plateau (~25 epochs)
    assert result.gr.auc["like"] > 0.8, result.gr
    assert result.cosine.auc["like"] == pytest.approx(0.5)  # zero profiles: no signal
    assert result.gr.ndcg_at_10 > result.cosine.ndcg_at_10 + 0.1
    assert result.gr.impressions == held_out and result.gr.members > 200
