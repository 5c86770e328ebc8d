"""The encoder's tokenizer for measuring prompts, without importing torch or transformers.

The prompt processor only counts and cuts prompt text in tokens (``processors.token_budget``);
importing transformers for that pulls in torch too, which costs it seconds on every start (and
tens of seconds on a loaded 2-core machine). ``PromptTokenizer`` runs the model directory's
``tokenizer.json`` through the ``tokenizers`` library that transformers' fast tokenizers wrap,
with the same special tokens and the same percentile wrappers, so it counts exactly what the
encoder's tokenizer counts (``tests/unit/models/test_prompt_tokenizer.py`` holds them equal).

A model directory without ``tokenizer.json`` (a slow-only tokenizer) falls back to
transformers' ``AutoTokenizer``.

Example::

    meter = TokenMeter(load_prompt_tokenizer(EncoderSettings()))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.model_dir import default_model_path
from models.settings import EncoderSettings
from processors.percentiles import wrapper_tokens
from processors.token_budget import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILES = ("tokenizer_config.json", "special_tokens_map.json")
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                       "cls_token", "mask_token", "additional_special_tokens")  # fmt: skip
"""transformers' ``SPECIAL_TOKENS_ATTRIBUTES`` order."""


class PromptTokenizer:
    """The subset of a Hugging Face fast tokenizer that ``TokenMeter`` calls, on ``tokenizers``."""

    def __init__(self, tokenizer: Any, special_tokens: list[str]) -> None:
        tokenizer.no_truncation()  # transformers sets neither unless a call asks for it
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._special = special_tokens

    @classmethod
    def from_model_dir(cls, path: Path, percentile_tokens: bool) -> PromptTokenizer:
        """The tokenizer of model directory ``path``, with the percentile wrappers as special
        tokens when ``percentile_tokens`` (as ``models.special_tokens.add_percentile_tokens``
        registers them: unnormalised, special)."""
        from tokenizers import AddedToken, Tokenizer

        tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        if percentile_tokens:
            vocabulary = tokenizer.get_vocab(with_added_tokens=True)
            new = [t for t in wrapper_tokens() if t not in vocabulary]
            tokenizer.add_special_tokens(
                [AddedToken(t, normalized=False, special=True) for t in new]
            )
        return cls(tokenizer, _special_tokens(path))

    @property
    def all_special_tokens(self) -> list[str]:
        """The model's special tokens, as transformers lists them."""
        return list(self._special)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """Tokens the post-processor adds around one text (``[CLS]`` … ``[SEP]``: 2)."""
        return int(self._tokenizer.num_special_tokens_to_add(pair))

    def __call__(
        self,
        text: str,
        add_special_tokens: bool = True,
        return_offsets_mapping: bool = False,
        **_: Any,
    ) -> dict[str, list[Any]]:
        """``{"input_ids": [...]}`` (and ``"offset_mapping"`` when asked) of one text."""
        encoding = self._tokenizer.encode(text, add_special_tokens=add_special_tokens)
        out: dict[str, list[Any]] = {"input_ids": list(encoding.ids)}
        if return_offsets_mapping:
            out["offset_mapping"] = list(encoding.offsets)
        return out


def load_prompt_tokenizer(settings: EncoderSettings) -> Tokenizer:
    """The tokenizer the prompt processor measures with: ``PromptTokenizer`` when the model
    directory has a ``tokenizer.json``, transformers' otherwise."""
    path = settings.model_path or default_model_path()
    if (path / TOKENIZER_FILE).exists():
        return PromptTokenizer.from_model_dir(path, settings.percentile_tokens)
    from models.hf_tokenizer import load_tokenizer  # imports transformers: only here

    tokenizer, _ = load_tokenizer(settings)
    return tokenizer


def _special_tokens(path: Path) -> list[str]:
    """The special tokens transformers lists in ``all_special_tokens``, in its order, from
    ``tokenizer_config.json`` or ``special_tokens_map.json`` (transformers 5 writes only the
    first into the checkpoints it saves)."""
    settings = tokenizer_settings(path)
    tokens: list[str] = []
    for name in SPECIAL_TOKEN_NAMES:
        value = settings.get(name)
        for entry in value if isinstance(value, list) else [value]:
            token = entry.get("content") if isinstance(entry, dict) else entry
            if token and str(token) not in tokens:
                tokens.append(str(token))
    return tokens


def tokenizer_settings(path: Path) -> dict[str, Any]:
    """``tokenizer_config.json`` over ``special_tokens_map.json`` (either may be absent)."""
    settings: dict[str, Any] = {}
    for name in reversed(SETTINGS_FILES):
        if (path / name).exists():
            settings.update(json.loads((path / name).read_text()))
    return settings
