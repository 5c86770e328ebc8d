"""The percentile wrapper tokens (``<view_pct>``, ``</view_pct>``, …) on tokenizer and model.

Each wrapper becomes one special token, so ``<view_pct>71</view_pct>`` is exactly three tokens
(the numbers 1..100 are single tokens already). New rows of the input embedding matrix start
from the mean embedding of words that describe them (``views percentile`` for ``<view_pct>``,
``views`` for ``</view_pct>``) rather than at random, so an untrained model already reads them
as roughly what they mean; fine-tuning then learns them.

Both encoder paths use these functions: transformers' tokenizer and ``PreTrainedModel``, and
``models.encoder_tokenizer.EncoderTokenizer`` with ``models.bert.BertEncoder``, which answer the
same calls (the ``Protocol`` classes below).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch

from processors.percentiles import FEATURE_TAGS, wrapper_tokens


class VocabularyTokenizer(Protocol):
    """What adding and initialising tokens needs of a tokenizer."""

    def get_vocab(self) -> dict[str, int]: ...

    def add_tokens(self, new_tokens: Any, special_tokens: bool = False) -> int: ...

    def convert_tokens_to_ids(self, token: str, /) -> Any: ...

    def __len__(self) -> int: ...

    def __call__(self, text: str, /, *, add_special_tokens: bool = ...) -> Mapping[str, Any]: ...


class ResizableModel(Protocol):
    """What growing the vocabulary needs of a model."""

    def resize_token_embeddings(self, new_num_tokens: int, /, *, mean_resizing: bool) -> Any: ...

    def get_input_embeddings(self) -> Any: ...


def add_percentile_tokens(tokenizer: VocabularyTokenizer) -> list[str]:
    """Register the wrappers as special tokens; returns those that were new."""
    vocabulary = tokenizer.get_vocab()
    new = [token for token in wrapper_tokens() if token not in vocabulary]
    if new:
        tokenizer.add_tokens(new, special_tokens=True)
    return new


def resize_for_new_tokens(model: ResizableModel, tokenizer: VocabularyTokenizer,
                          new_tokens: Sequence[str]) -> None:  # fmt: skip
    """Grow the embedding matrix to the tokenizer and initialise the new rows."""
    if not new_tokens:
        return
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    embeddings = model.get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Embedding)
    weights = embeddings.weight  # (V, D)
    with torch.no_grad():
        for token in new_tokens:
            words = _description(token)
            ids = tokenizer(words, add_special_tokens=False)["input_ids"]
            weights[tokenizer.convert_tokens_to_ids(token)] = weights[ids].mean(dim=0)


def _description(token: str) -> str:
    tag = token.strip("</>")
    feature = next(f for f, t in FEATURE_TAGS.items() if t == tag)
    return feature if token.startswith("</") else f"{feature} percentile"
