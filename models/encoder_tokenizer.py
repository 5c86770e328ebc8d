"""The encoder's batch tokenizer on the ``tokenizers`` library, without transformers.

transformers' fast tokenizers are this same Rust tokenizer (the model directory's
``tokenizer.json``) plus per-call truncation and padding settings. ``EncoderTokenizer`` sets
them as transformers does (longest-first truncation to ``max_length`` counting the special
tokens, padding to the longest text on the side ``tokenizer_config.json`` names) and answers
the few calls ``TextEncoder`` and ``models.special_tokens`` make, with the same results:
``tests/unit/models/test_bert.py`` holds the ids equal to transformers'.

Example::

    tokenizer = EncoderTokenizer.from_model_dir(path)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from models.bert_config import UnsupportedModelError
from models.prompt_tokenizer import tokenizer_settings

TOKENIZER_FILE = "tokenizer.json"
_NO_LIMIT = 10**30  # transformers' "model_max_length unknown"


class EncoderTokenizer:
    """The subset of a transformers fast tokenizer that the encoder uses, on ``tokenizers``."""

    def __init__(
        self,
        tokenizer: Any,
        pad_token: str,
        unk_token: str | None = None,
        padding_side: Literal["right", "left"] = "right",
        model_max_length: int = _NO_LIMIT,
    ) -> None:
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise UnsupportedModelError(f"pad token {pad_token!r} is not in the vocabulary")
        tokenizer.no_truncation()  # the file's own settings are not what transformers applies
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.pad_token, self.pad_token_id = pad_token, int(pad_id)
        self.unk_token = unk_token
        self.padding_side = padding_side
        self.model_max_length = model_max_length

    @classmethod
    def from_model_dir(cls, path: Path) -> EncoderTokenizer:
        """The tokenizer of model directory ``path``; raises ``UnsupportedModelError`` when it
        has no ``tokenizer.json`` or names no pad (nor end-of-sequence) token."""
        from tokenizers import Tokenizer

        if not (path / TOKENIZER_FILE).exists():
            raise UnsupportedModelError(f"{path} has no {TOKENIZER_FILE}")
        settings = tokenizer_settings(path)
        pad_token = _token(settings, "pad_token") or _token(settings, "eos_token")
        if pad_token is None:
            raise UnsupportedModelError(f"{path} names no pad_token")
        return cls(
            Tokenizer.from_file(str(path / TOKENIZER_FILE)),
            pad_token,
            unk_token=_token(settings, "unk_token"),
            padding_side=settings.get("padding_side", "right"),
            model_max_length=int(settings.get("model_max_length") or _NO_LIMIT),
        )

    def __call__(
        self,
        text: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
        padding: bool = False,
        return_tensors: Literal["pt"] | None = None,
    ) -> dict[str, Any]:
        """``input_ids``, ``token_type_ids`` and ``attention_mask`` of ``text`` (lists, or
        ``(B, T)`` tensors with ``return_tensors="pt"``), as transformers computes them."""
        self._configure(truncation, max_length, padding)
        texts = [text] if isinstance(text, str) else list(text)
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {
            "input_ids": [e.ids for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
        }
        if return_tensors == "pt":
            return {key: torch.tensor(rows, dtype=torch.long) for key, rows in out.items()}
        return {key: rows[0] for key, rows in out.items()} if isinstance(text, str) else out

    def __len__(self) -> int:
        """Vocabulary size including added tokens (the rows the embedding matrix needs)."""
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    @property
    def vocab_size(self) -> int:
        """Vocabulary size without added tokens (as transformers defines it)."""
        return int(self._tokenizer.get_vocab_size(with_added_tokens=False))

    def get_vocab(self) -> dict[str, int]:
        """Token → id, added tokens included."""
        return dict(self._tokenizer.get_vocab(with_added_tokens=True))

    def add_tokens(self, new_tokens: Sequence[str], special_tokens: bool = False) -> int:
        """Add ``new_tokens`` (as special tokens when ``special_tokens``); returns how many
        were new. The same ``tokenizers`` call transformers makes."""
        if special_tokens:
            return int(self._tokenizer.add_special_tokens(list(new_tokens)))
        return int(self._tokenizer.add_tokens(list(new_tokens)))

    def convert_tokens_to_ids(self, token: str) -> int | None:
        """The id of ``token``; the unknown token's id when it is not in the vocabulary."""
        found = self._tokenizer.token_to_id(token)
        if found is None and self.unk_token is not None:
            found = self._tokenizer.token_to_id(self.unk_token)
        return None if found is None else int(found)

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` without special tokens."""
        self._configure(truncation=False, max_length=None, padding=False)
        return list(self._tokenizer.encode(text, add_special_tokens=False).tokens)

    def _configure(self, truncation: bool, max_length: int | None, padding: bool) -> None:
        if truncation:
            limit = max_length or self.model_max_length
            self._tokenizer.enable_truncation(limit, strategy="longest_first", direction="right")
        elif self._tokenizer.truncation is not None:
            self._tokenizer.no_truncation()
        if padding:
            self._tokenizer.enable_padding(
                direction=self.padding_side, pad_id=self.pad_token_id, pad_token=self.pad_token
            )
        elif self._tokenizer.padding is not None:
            self._tokenizer.no_padding()


def _token(settings: dict[str, Any], name: str) -> str | None:
    value = settings.get(name)
    return str(value["content"]) if isinstance(value, dict) else value
