"""``models.dual.freezing`` and ``freeze_layers``: frozen weights stay put, the percentile
token rows keep learning, unsupported requests fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models import EncoderSettings, TextEncoder
from models.dual.freezing import FreezeError, freeze_bottom, transformer_layers
from models.dual.trainer import train_dual_encoder
from tests.support.dual_data import fast, topic_examples
from tests.tiny_models import save_tiny_model

USED = ("<view_pct>", "</view_pct>")  # in every post prompt of topic_examples()
UNUSED = ("<share_pct>", "</share_pct>")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")  # 2 layers


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert")  # 1 layer


def load(path: Path) -> TextEncoder:
    return TextEncoder.load(EncoderSettings(model_path=path), backend="transformers")


def train_frozen(base: Path, out: Path, layers: int) -> tuple[TextEncoder, dict[str, torch.Tensor]]:
    """The base as training loads it (token rows added), and the weights after 2 steps."""
    settings = fast(base_model_path=base, max_steps=2, learning_rate=1e-2, freeze_layers=layers)
    assert settings.weight_decay > 0  # decay must not move frozen rows either
    result = train_dual_encoder(topic_examples(), settings, out)
    return load(base), load_file(result.out_dir / "model.safetensors")


def rows(encoder: TextEncoder, tokens: tuple[str, ...]) -> list[int]:
    vocabulary = encoder.tokenizer.get_vocab()
    return [vocabulary[token] for token in tokens]


def test_llama_bottom_layer_and_embeddings_stay_token_rows_learn(
    tiny_llama: Path, tmp_path: Path
) -> None:
    base, trained = train_frozen(tiny_llama, tmp_path / "ft", layers=1)
    before = base.model.state_dict()
    bottom = [name for name in trained if name.startswith("layers.0.")]
    assert len(bottom) == 9  # 7 projections, 2 norms
    for name in bottom:
        assert torch.equal(trained[name], before[name]), name
    assert any(
        not torch.equal(weights, before[name])
        for name, weights in trained.items()
        if name.startswith("layers.1.")
    )
    embed_before, embed_after = before["embed_tokens.weight"], trained["embed_tokens.weight"]
    changed = (embed_before != embed_after).any(dim=1).nonzero().flatten().tolist()
    assert changed == sorted(rows(base, USED))  # only the used token rows moved
    for row in rows(base, UNUSED):
        assert torch.equal(embed_before[row], embed_after[row])


def test_bert_embeddings_with_positions_and_norm_stay_frozen(
    tiny_bert: Path, tmp_path: Path
) -> None:
    base, trained = train_frozen(tiny_bert, tmp_path / "ft", layers=1)  # every layer frozen
    before = base.model.state_dict()
    moved = {name for name, weights in trained.items() if not torch.equal(weights, before[name])}
    assert moved == {"embeddings.word_embeddings.weight"}
    word_before = before["embeddings.word_embeddings.weight"]
    word_after = trained["embeddings.word_embeddings.weight"]
    changed = (word_before != word_after).any(dim=1).nonzero().flatten().tolist()
    assert changed == sorted(rows(base, USED))


def test_freeze_bottom_sets_requires_grad_and_counts(tiny_llama: Path) -> None:
    model = load(tiny_llama).model
    token_rows = [5, 7]
    frozen = freeze_bottom(model, 2, token_rows)
    embed = model.get_input_embeddings().weight
    assert frozen.partial is embed and embed.requires_grad
    assert not any(p.requires_grad for p in transformer_layers(model).parameters())
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["embed_tokens.weight", "norm.weight"]
    layer_params = sum(p.numel() for p in transformer_layers(model).parameters())
    assert frozen.parameters == layer_params + embed.numel() - len(token_rows) * embed.shape[1]
    embed.sum().backward()
    assert embed.grad is not None
    assert embed.grad.abs().sum(dim=1).nonzero().flatten().tolist() == token_rows


def test_freezing_without_token_rows_freezes_the_whole_matrix(tiny_llama: Path) -> None:
    model = load(tiny_llama).model
    frozen = freeze_bottom(model, 1, [])
    assert frozen.partial is None
    assert not model.get_input_embeddings().weight.requires_grad


def test_zero_freezes_nothing(tiny_llama: Path) -> None:
    model = load(tiny_llama).model
    assert freeze_bottom(model, 0, [5]) == (0, None)
    assert all(p.requires_grad for p in model.parameters())


def test_more_layers_than_the_model_has_are_refused(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(FreezeError, match="freeze_layers=3, but LlamaModel has 2 transformer"):
        train_dual_encoder(
            topic_examples(), fast(base_model_path=tiny_llama, freeze_layers=3), tmp_path / "ft"
        )
    assert not (tmp_path / "ft").exists()


def test_a_model_without_known_layers_is_refused() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4))
    with pytest.raises(FreezeError, match="cannot find the transformer layers of Sequential"):
        freeze_bottom(model, 1, [])
