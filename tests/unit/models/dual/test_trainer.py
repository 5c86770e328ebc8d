"""``models.dual.trainer``: InfoNCE fine-tuning of MiniLM and of a tiny decoder LLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from models import EncoderSettings, TextEncoder, default_model_path
from models.dual.examples import ContrastiveExample, TrainingDataError
from models.dual.train_settings import DualTrainSettings
from models.dual.trainer import train_dual_encoder
from models.encoder import MODEL_CARD_FILE
from tests.support.dual_data import fast, input_rows, topic_examples
from tests.tiny_models import save_tiny_model

# --- MiniLM (its learning tests, a minute of CPU, are tests/integration/test_dual_training.py)


def test_percentile_token_rows_are_trained(tmp_path: Path) -> None:
    base = TextEncoder.load(EncoderSettings())
    train_dual_encoder(topic_examples()[:4], fast(max_steps=1, weight_decay=0.0), tmp_path / "ft")
    trained = TextEncoder.load(EncoderSettings(model_path=tmp_path / "ft"))
    before, after = input_rows(base), input_rows(trained)  # (V, D) each
    assert before.shape == after.shape
    row = trained.tokenizer.convert_tokens_to_ids
    assert row("<view_pct>") == base.tokenizer.convert_tokens_to_ids("<view_pct>")
    for used in ("<view_pct>", "</view_pct>"):
        assert not torch.equal(before[row(used)], after[row(used)]), used
    for unused in ("<share_pct>", "</share_pct>"):  # no gradient, no weight decay
        assert torch.equal(before[row(unused)], after[row(unused)]), unused


# --- a tiny decoder LLM --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


def test_decoder_trains_with_last_token_pooling_and_reloads(
    tiny_llama: Path, tmp_path: Path
) -> None:
    steps: list[tuple[int, float]] = []
    result = train_dual_encoder(
        topic_examples()[:6],
        fast(base_model_path=tiny_llama, max_steps=1, gradient_checkpointing=True),
        tmp_path / "ft",
        on_step=lambda step, loss: steps.append((step, loss)),
    )
    assert result.steps == 1 and len(steps) == 1 and steps[0][0] == 1
    assert np.isfinite(result.step_losses[0])
    assert result.model_version.startswith(f"{tiny_llama.name}-ft-")
    card = json.loads((result.out_dir / MODEL_CARD_FILE).read_text())
    assert card["pooling"] == "last_token"
    decoder = TextEncoder.load(EncoderSettings(model_path=result.out_dir))
    assert decoder.pooling == "last_token"  # the saved config still names the decoder
    assert decoder.model_version == result.model_version
    assert decoder.encode(["hello", "a longer prompt"]).shape == (2, 32)
    config = json.loads((result.out_dir / "config.json").read_text())
    assert config["use_cache"] is True  # switched off for training only


def test_learned_temperature_moves_and_fixed_does_not(tiny_llama: Path, tmp_path: Path) -> None:
    cards = {}
    for learned in (True, False):
        settings = fast(base_model_path=tiny_llama, max_steps=2, learn_temperature=learned)
        result = train_dual_encoder(topic_examples()[:8], settings, tmp_path / str(learned))
        cards[learned] = json.loads((result.out_dir / MODEL_CARD_FILE).read_text())
    assert cards[False]["temperature"] == pytest.approx(0.05, abs=1e-8)
    assert abs(cards[True]["temperature"] - 0.05) > 1e-5


def test_sampler_gets_each_epoch_and_max_steps_caps_the_run(
    tiny_llama: Path, tmp_path: Path
) -> None:
    calls: list[int] = []
    pool = topic_examples()

    def sampler(epoch: int, rng: np.random.Generator) -> list[ContrastiveExample]:
        calls.append(epoch)
        return [pool[int(i)] for i in rng.choice(len(pool), size=8, replace=False)]

    settings = fast(base_model_path=tiny_llama, epochs=5, batch_size=4, max_steps=5)
    result = train_dual_encoder(sampler, settings, tmp_path / "ft")
    assert calls == [0, 1, 2]  # 2 steps per epoch; the third epoch stops after one
    assert result.steps == 5
    assert len(result.epoch_losses) == 3


def test_an_empty_epoch_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="epoch 0 has no training examples"):
        train_dual_encoder([], fast(base_model_path=tiny_llama), tmp_path / "ft")
    assert not (tmp_path / "ft").exists()


def test_training_again_replaces_the_directory(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    first = train_dual_encoder(
        topic_examples()[:4], fast(base_model_path=tiny_llama, max_steps=1), out
    )
    second = train_dual_encoder(
        topic_examples()[:4], fast(base_model_path=tiny_llama, max_steps=1, seed=1), out
    )
    assert first.model_version != second.model_version
    assert TextEncoder.load(EncoderSettings(model_path=out)).model_version == second.model_version
    assert [p.name for p in tmp_path.iterdir()] == ["ft"]
    assert oct((out / "model.safetensors").stat().st_mode & 0o777) == "0o644"


def test_same_seed_same_model(tiny_llama: Path, tmp_path: Path) -> None:
    settings = fast(base_model_path=tiny_llama, max_steps=2)
    first = train_dual_encoder(topic_examples()[:8], settings, tmp_path / "a")
    second = train_dual_encoder(topic_examples()[:8], settings, tmp_path / "b")
    assert first.model_version == second.model_version
    assert first.step_losses == second.step_losses
    weights = load_file(first.out_dir / "model.safetensors")
    assert "embed_tokens.weight" in weights  # the bare decoder, no LM head


def test_the_latest_query_changes_the_loss(tiny_llama: Path, tmp_path: Path) -> None:
    examples = [e._replace(latest=topic_examples()[-1 - n].positive) for n, e in
                enumerate(topic_examples()[:8])]  # fmt: skip
    catalogue = sorted({e.positive for e in topic_examples()})
    losses = {}
    for weight in (0.0, 3.0):
        settings = fast(
            base_model_path=tiny_llama,
            max_steps=1,
            catalogue_negatives=True,
            latest_weight=weight,
            seed=0,
        )
        result = train_dual_encoder(
            examples, settings, tmp_path / f"ft-{weight}", catalogue=catalogue
        )
        losses[weight] = result.step_losses[0]
    assert np.isfinite(list(losses.values())).all()
    assert losses[3.0] != pytest.approx(losses[0.0], abs=1e-4)  # the query moved


# --- settings ------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = DualTrainSettings()
    assert settings.schedule == "linear" and settings.warmup_steps is None
    assert settings.max_minutes is None and settings.freeze_layers == 0
    assert settings.validate_every == 50 and settings.patience == 3
    assert settings.validation_members == 500
    assert settings.progress
    assert settings.hard_negatives == 1 and settings.easy_negatives == 1
    assert settings.base_path() == default_model_path()
    assert settings.temperature == 0.05 and not settings.learn_temperature
    assert settings.use_gradient_checkpointing() == torch.cuda.is_available()
    assert not DualTrainSettings(device="cpu").use_gradient_checkpointing()
    assert DualTrainSettings(device="cpu", gradient_checkpointing=True).use_gradient_checkpointing()


@pytest.mark.parametrize(
    "field,value",
    [
        ("hard_negatives", -1),
        ("hard_negatives", 9),
        ("easy_negatives", -1),
        ("batch_size", 0),
        ("epochs", 0),
        ("temperature", 0.001),
        ("temperature", 2.0),
        ("max_steps", 0),
        ("learning_rate", 0.0),
        ("pooling", "cls"),
        ("device", "tpu"),
        ("schedule", "step"),
        ("warmup_steps", -1),
        ("max_minutes", 0),
        ("validate_every", 0),
        ("patience", -1),
        ("validation_members", 0),
        ("freeze_layers", -1),
    ],
)
def test_invalid_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        DualTrainSettings(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("hard", [0, 1, 2, 8])
def test_hard_negatives_from_zero_to_eight(hard: int) -> None:
    assert DualTrainSettings(hard_negatives=hard).hard_negatives == hard


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEEDLINE_DUAL_TRAIN_HARD_NEGATIVES", "2")
    monkeypatch.setenv("FEEDLINE_DUAL_TRAIN_LEARN_TEMPERATURE", "true")
    monkeypatch.setenv("FEEDLINE_DUAL_TRAIN_BASE_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("FEEDLINE_DUAL_TRAIN_SCHEDULE", "cosine")
    monkeypatch.setenv("FEEDLINE_DUAL_TRAIN_MAX_MINUTES", "2.5")
    monkeypatch.setenv("FEEDLINE_DUAL_TRAIN_PROGRESS", "false")
    settings = DualTrainSettings()
    assert settings.schedule == "cosine" and settings.max_minutes == 2.5
    assert not settings.progress
    assert settings.hard_negatives == 2
    assert settings.learn_temperature
    assert settings.base_path() == tmp_path


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_minilm_trains_on_cuda_in_bfloat16_with_checkpointing(tmp_path: Path) -> None:
    """CUDA's defaults (bf16 autocast, gradient checkpointing): the loss falls over a few
    steps and the saved model embeds on CPU."""
    settings = fast(device="cuda", epochs=3)
    assert settings.bf16 and settings.use_gradient_checkpointing()
    result = train_dual_encoder(topic_examples(), settings, tmp_path / "ft")
    assert result.steps == 9 and all(np.isfinite(result.step_losses))
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    trained = TextEncoder.load(EncoderSettings(model_path=tmp_path / "ft", device="cpu"))
    assert trained.model_version == result.model_version
    vectors = trained.encode(["post\ntext: a", "member\nheadline: b"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
