"""transformers' tokenizer of a model directory, offline, with feedline's percentile tokens.

The path for models without a ``tokenizer.json`` (the native path uses
``models.encoder_tokenizer``); transformers is imported only when it is called."""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.model_dir import default_model_path
from models.settings import EncoderSettings
from models.special_tokens import add_percentile_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def load_tokenizer(settings: EncoderSettings) -> tuple[PreTrainedTokenizerBase, list[str]]:
    """The model's tokenizer (offline) with a pad token and, when ``percentile_tokens`` is on,
    the percentile wrappers; returns it and the wrappers it did not have yet. The prompt
    processor measures token budgets with the same tokenizer the encoder uses."""
    from transformers import AutoTokenizer

    path = settings.model_path or default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    new_tokens = add_percentile_tokens(tokenizer) if settings.percentile_tokens else []
    return tokenizer, new_tokens
