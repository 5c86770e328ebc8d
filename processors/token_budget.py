"""Measuring and cutting prompt text in real tokenizer tokens.

``TokenMeter`` wraps any Hugging Face *fast* tokenizer (duck-typed: called with
``return_offsets_mapping``), so this package stays free of torch/transformers imports while
budgets are measured with exactly the tokenizer the encoder runs.
"""

from __future__ import annotations

from typing import Any, Protocol

ELLIPSIS = "…"
MEMO_CHARS = 400
"""Fragments up to this long have their counts remembered (history items, headers)."""
MEMO_ENTRIES = 200_000


class Tokenizer(Protocol):
    """The part of a Hugging Face fast tokenizer that budgets need."""

    @property
    def all_special_tokens(self) -> list[str]: ...

    def __call__(self, text: str, **kwargs: Any) -> Any: ...

    def num_special_tokens_to_add(self, pair: bool = False) -> int: ...


class TokenMeter:
    """Counts tokens of text fragments and cuts text at a token boundary."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self.special_tokens = int(tokenizer.num_special_tokens_to_add())
        """Tokens the tokenizer adds around a whole prompt ([CLS] … [SEP] for BERT)."""
        self.reserved = tuple(tokenizer.all_special_tokens)
        """Strings the tokenizer turns into its special tokens wherever they appear in text."""
        self._memo: dict[str, int] = {}

    def count(self, text: str) -> int:
        """Tokens of ``text`` without the special tokens around a prompt."""
        if not text:
            return 0
        if len(text) > MEMO_CHARS:
            return self._count(text)
        known = self._memo.get(text)
        if known is None:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()  # bounded; member histories repeat the same few items
            known = self._memo[text] = self._count(text)
        return known

    def _count(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def cut(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` ending at a token boundary that, with an ellipsis
        appended when cut, has at most ``max_tokens`` tokens."""
        if self.count(text) <= max_tokens:
            return text
        if max_tokens <= self.count(ELLIPSIS):
            return ""
        encoded = self._tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets = encoded["offset_mapping"]
        keep = max_tokens - self.count(ELLIPSIS)
        while keep > 0:
            prefix = text[: offsets[keep - 1][1]].rstrip()
            if self.count(prefix + ELLIPSIS) <= max_tokens:
                return prefix + ELLIPSIS
            keep -= 1
        return ""
