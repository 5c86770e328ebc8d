"""Training on a tiny world whose likes depend only on the member's history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.errors import ModelLoadError
from models.gr.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from models.gr.config import GRConfig
from models.gr.dataset import GRDataset, build_dataset
from models.gr.sequences import PostCatalog
from models.gr.train import train_gr
from models.gr.train_settings import GRTrainSettings
from tests.unit.models.gr.gr_fixtures import random_inputs

CONFIG = GRConfig(embedding_dim=16, d_model=32, n_heads=4, dropout=0.0)
TOPICS, POSTS_PER_TOPIC = 6, 30


def _tiny_world(seed: int = 0, members: int = 300, impressions: int = 40) -> GRDataset:
    """Members like on-topic posts 70% of the time, others 2%. Profiles are zeros, so only
    the history can tell a member's topic: cosine ranking has no signal, the GR must learn."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(TOPICS, 16))
    topic_of = np.repeat(np.arange(TOPICS), POSTS_PER_TOPIC)
    vectors = centroids[topic_of] + 0.3 * rng.normal(size=(len(topic_of), 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    post_ids = [f"p{i}" for i in range(len(topic_of))]
    rows: list[dict[str, object]] = []
    for m in range(members):
        topic, ts = int(rng.integers(TOPICS)), 0
        for post in rng.choice(len(post_ids), size=impressions, replace=False):
            ts += int(rng.integers(1_000, 100_000))
            on = topic_of[post] == topic
            rows.append(
                {
                    "member_id": f"m{m}",
                    "post_id": post_ids[post],
                    "action": "impression",
                    "ts_ms": ts,
                    "device": "mobile",
                }
            )
            if rng.random() < (0.7 if on else 0.02):
                rows.append(
                    {
                        "member_id": f"m{m}",
                        "post_id": post_ids[post],
                        "action": "like",
                        "ts_ms": ts + 500,
                        "device": "mobile",
                    }
                )
    catalog = PostCatalog(
        {p: i for i, p in enumerate(post_ids)},
        vectors,
        ["a"] * len(post_ids),
        ["text"] * len(post_ids),
    )
    return build_dataset(
        rows,
        catalog,
        {},
        CONFIG,
        holdout_fraction=0.25,
        embedding_model_version="emb-v1",
        source="tiny",
    )


@pytest.fixture(scope="module")
def trained() -> tuple[GRDataset, object]:
    dataset = _tiny_world()
    settings = GRTrainSettings(epochs=40, batch_size=4, learning_rate=3e-3, device="cpu")
    return dataset, train_gr(dataset, CONFIG, settings)


def test_loss_decreases_and_the_gr_learns_interests_from_history(trained: tuple) -> None:
    dataset, result = trained
    train, held_out = dataset.impressions()
    assert train > 1_000 and held_out > 300
    assert result.epoch_losses[-1] < 0.8 * result.epoch_losses[0]
    # matching candidates against liked history posts is learnt after a plateau (~25 epochs)
    assert result.gr.auc["like"] > 0.8, result.gr
    assert result.cosine.auc["like"] == pytest.approx(0.5)  # zero profiles: no signal
    assert result.gr.ndcg_at_10 > result.cosine.ndcg_at_10 + 0.1
    assert result.gr.impressions == held_out and result.gr.members > 200


def test_checkpoint_round_trip_gives_identical_scores(trained: tuple, tmp_path: Path) -> None:
    _, result = trained
    version = save_checkpoint(result.model, tmp_path / "gr", embedding_model_version="emb-v1")
    assert version.startswith("gr-") and len(version) == 15
    loaded = load_checkpoint(tmp_path / "gr")
    assert loaded.model_version == version and loaded.embedding_model_version == "emb-v1"
    assert loaded.model.config == result.model.config
    inputs = random_inputs(20, 5, CONFIG, seed=1)
    result.model.eval()
    with torch.inference_mode():
        assert torch.equal(
            result.model.score_candidates(inputs), loaded.model.score_candidates(inputs)
        )
    # rewriting keeps one complete checkpoint with the same version for the same weights
    assert (
        save_checkpoint(result.model, tmp_path / "gr", embedding_model_version="emb-v1") == version
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gr"]


def test_broken_checkpoints_fail_with_a_clear_error(trained: tuple, tmp_path: Path) -> None:
    _, result = trained
    save_checkpoint(result.model, tmp_path / "gr", embedding_model_version="emb-v1")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="cuda"):
            load_checkpoint(tmp_path / "gr", "cuda")
    (tmp_path / "gr" / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="feedline train gr"):
        load_checkpoint(tmp_path / "gr")
    with pytest.raises(ModelLoadError, match=CONFIG_FILE):
        load_checkpoint(tmp_path / "missing")
