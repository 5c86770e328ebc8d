"""BERT's encoder forward pass on torch alone, for serving BERT-family checkpoints.

``import transformers`` costs 20+ seconds on a loaded 2-core machine (it pulls in sklearn,
``torch._dynamo`` and ``torch.distributed``), far more than loading the weights. The embedding
worker and the query service only run BERT's encoder at inference, which is a few dozen lines:
``BertEncoder`` computes what transformers' ``BertModel(...).last_hidden_state`` computes (same
parameter names, same layer order, SDPA attention with the same boolean padding mask), from a
model directory's ``config.json`` and ``model.safetensors``.

It is inference only: there is no dropout, so training goes through transformers. A directory
it cannot reproduce exactly (another architecture, a decoder, relative positions, weights it
does not know) raises ``UnsupportedModelError`` and ``TextEncoder.load`` uses transformers.

Example::

    model = BertEncoder.from_model_dir(path).eval()
    hidden = model(input_ids, attention_mask).last_hidden_state  # (B, T, D)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from models.bert_config import BertConfig, UnsupportedModelError

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
_BUFFERS = {"embeddings.position_ids", "embeddings.token_type_ids"}
"""Non-persistent buffers that older transformers versions wrote into checkpoints."""


class BertOutput(NamedTuple):
    """What ``BertEncoder`` returns (named as transformers names it)."""

    last_hidden_state: torch.Tensor
    """(B, T, D) token states of the last layer."""


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    """transformers' ``NewGELUActivation`` (GPT-2's tanh approximation), term for term."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3.0))))


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": nn.functional.gelu,  # exact erf GELU, as transformers' GELUActivation
    "gelu_new": _gelu_new,
    "gelu_pytorch_tanh": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "relu": nn.functional.relu,
}


class _DenseNorm(nn.Module):
    """``dense`` then ``LayerNorm(x + residual)``: BertSelfOutput and BertOutput."""

    def __init__(self, d_in: int, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _SelfAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = x.shape
        shape = (batch, length, self.heads, dim // self.heads)
        q, k, v = (p(x).view(shape).transpose(1, 2) for p in (self.query, self.key, self.value))
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, d)
        return out.transpose(1, 2).reshape(batch, length, dim)  # (B, T, D)


class _Attention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(config)
        self.output = _DenseNorm(config.hidden_size, config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class _Intermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACTIVATIONS[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))  # (B, T, I)


class _Layer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(config)
        self.intermediate = _Intermediate(config)
        self.output = _DenseNorm(config.intermediate_size, config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        attended = self.attention(x, mask)  # (B, T, D)
        return self.output(self.intermediate(attended), attended)


class _Layers(nn.Module):
    """The ``encoder.layer.<i>`` container (run by ``BertEncoder.forward``)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))


class _Embeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.word_embeddings = _embedding(config.vocab_size, d, config.pad_token_id)
        self.position_embeddings = _embedding(config.max_position_embeddings, d)
        self.token_type_embeddings = _embedding(config.type_vocab_size, d)
        self.LayerNorm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x + self.position_embeddings(positions))


class BertEncoder(nn.Module):
    """transformers' ``BertModel`` without the pooler, for inference (no dropout)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Layers(config)

    @classmethod
    def from_model_dir(cls, path: Path, config: BertConfig | None = None) -> BertEncoder:
        """The model in directory ``path`` (its ``config.json`` unless ``config`` is given),
        in the dtype transformers would pick; raises ``UnsupportedModelError``."""
        config = config or BertConfig.from_model_dir(path)
        weights = load_bert_weights(path)
        dtype = config.dtype or next(w.dtype for w in weights.values() if w.is_floating_point())
        with torch.device("meta"):
            model = cls(config)
        expected = set(model.state_dict())
        if missing := sorted(expected - set(weights)):
            raise UnsupportedModelError(f"{path}: checkpoint lacks weights {missing[:5]}")
        if unknown := sorted(set(weights) - expected - _BUFFERS):
            raise UnsupportedModelError(f"{path}: weights BertModel does not have: {unknown[:5]}")
        model.load_state_dict({k: weights[k].to(dtype) for k in expected}, assign=True)
        return model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> BertOutput:
        """Token states of ``input_ids`` (B, T); ``attention_mask`` (B, T) is 1 for real tokens."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, D)
        mask = _attention_mask(attention_mask, input_ids.shape[1])  # (B, 1, T, T) or None
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return BertOutput(last_hidden_state=x)

    def get_input_embeddings(self) -> nn.Embedding:
        """The word-embedding matrix (V, D)."""
        return self.embeddings.word_embeddings

    def resize_token_embeddings(self, new_num_tokens: int, mean_resizing: bool = False) -> None:
        """Grow or shrink the vocabulary to ``new_num_tokens`` rows, keeping the old rows; new
        rows are drawn from N(0, initializer_range²) as transformers' ``mean_resizing=False``
        does (``models.special_tokens`` then overwrites them)."""
        if mean_resizing:
            raise ValueError("BertEncoder only supports mean_resizing=False")
        old = self.embeddings.word_embeddings
        with torch.device(old.weight.device):
            new = _embedding(new_num_tokens, old.embedding_dim, old.padding_idx, old.weight.dtype)
        with torch.no_grad():
            new.weight.normal_(0.0, self.config.initializer_range)
            keep = min(new_num_tokens, old.num_embeddings)
            new.weight[:keep] = old.weight[:keep]
        self.embeddings.word_embeddings = new
        self.config = dataclasses.replace(self.config, vocab_size=new_num_tokens)


def _embedding(
    rows: int, dim: int, padding_idx: int | None = None, dtype: torch.dtype | None = None
) -> nn.Embedding:
    """An uninitialised embedding: its weights are loaded next. (``nn.Embedding``'s own
    random init on the meta device would import ``torch._dynamo``, seconds of start-up.)"""
    return nn.Embedding(rows, dim, padding_idx, _weight=torch.empty(rows, dim, dtype=dtype))


def _attention_mask(attention_mask: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """transformers' ``create_bidirectional_mask`` for SDPA: ``None`` when nothing is padded,
    else a boolean (B, 1, T, T) mask that is True where a key may be attended to."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    keys = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    return keys.expand(-1, 1, length, -1)


def load_bert_weights(path: Path) -> dict[str, torch.Tensor]:
    """The BertModel weights of ``path``'s safetensors (one file or shards), named as in
    ``BertModel``: a task model's ``bert.`` prefix removed, its heads (``cls.``, ``pooler.``…)
    dropped, TF-era ``gamma``/``beta`` renamed."""
    from safetensors.torch import load_file

    files = _weight_files(path)
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        for name, tensor in load_file(file).items():
            name = name.removeprefix("bert.")
            if name.startswith(("embeddings.", "encoder.")):
                weights[_rename(name)] = tensor
    return weights


def _weight_files(path: Path) -> list[Path]:
    if (path / WEIGHTS_FILE).exists():
        return [path / WEIGHTS_FILE]
    if (path / WEIGHTS_INDEX_FILE).exists():
        index: dict[str, Any] = json.loads((path / WEIGHTS_INDEX_FILE).read_text())
        return [path / name for name in sorted(set(index["weight_map"].values()))]
    raise UnsupportedModelError(f"{path} has no {WEIGHTS_FILE}")


def _rename(name: str) -> str:
    if name.endswith("LayerNorm.gamma"):
        return name.removesuffix("gamma") + "weight"
    if name.endswith("LayerNorm.beta"):
        return name.removesuffix("beta") + "bias"
    return name
