"""``processors.token_budget.TokenMeter``: counting and cutting in real tokenizer tokens."""

from __future__ import annotations

import re
from typing import Any

import pytest

from processors.token_budget import ELLIPSIS, TokenMeter

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "and",
    "then",
    "runs",
    "back",
    "home",
    "again",
]


class WordTokenizer:
    """A fast-tokenizer stand-in: one token per word or punctuation mark, [CLS]/[SEP] around."""

    all_special_tokens: list[str] = ["[CLS]", "[SEP]"]  # noqa: RUF012 - read-only here

    def __call__(
        self,
        text: str,
        add_special_tokens: bool = True,
        return_offsets_mapping: bool = False,
        verbose: bool = True,
    ) -> dict[str, Any]:
        spans = [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]
        ids = list(range(len(spans)))
        if add_special_tokens:
            ids = [-1, *ids, -2]
        out: dict[str, Any] = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = spans
        return out

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 2


@pytest.fixture
def words() -> TokenMeter:
    return TokenMeter(WordTokenizer())


# --- with a stand-in tokenizer: exact expectations -------------------------------------------


def test_special_tokens_come_from_the_tokenizer(words: TokenMeter, meter: TokenMeter) -> None:
    assert words.special_tokens == 2
    assert meter.special_tokens == 2  # MiniLM: [CLS] … [SEP]


def test_count_excludes_special_tokens(words: TokenMeter) -> None:
    assert words.count("") == 0
    assert words.count("one two, three") == 4


def test_text_that_fits_is_returned_unchanged(words: TokenMeter) -> None:
    assert words.cut("one two three", 3) == "one two three"
    assert words.cut("one two three", 100) == "one two three"
    assert words.cut("", 0) == ""


def test_cut_keeps_whole_tokens_and_appends_an_ellipsis(words: TokenMeter) -> None:
    assert words.cut("one two three four five", 3) == "one two…"
    assert words.cut("one two three four five", 4) == "one two three…"
    assert words.cut("one   two\n\nthree four", 3) == "one   two…"  # trailing space dropped


@pytest.mark.parametrize("max_tokens", [-5, 0, 1])
def test_no_room_beside_the_ellipsis_gives_empty_text(words: TokenMeter, max_tokens: int) -> None:
    assert words.cut("one two three", max_tokens) == ""


# --- with the encoder's tokenizer ------------------------------------------------------------


def test_counts_match_the_tokenizer(meter: TokenMeter, tokenizer: Any) -> None:
    text = "Streaming embeddings with Kafka 😀 and 机器学习 — fast"
    assert meter.count(text) == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert len(tokenizer(text)["input_ids"]) == meter.count(text) + meter.special_tokens
    assert meter.count(ELLIPSIS) == 1


@pytest.mark.parametrize("max_tokens", [2, 3, 5, 8, 13])
def test_cut_of_single_token_words_is_exact(meter: TokenMeter, max_tokens: int) -> None:
    assert all(meter.count(w) == 1 for w in WORDS)
    cut = meter.cut(" ".join(WORDS), max_tokens)
    assert cut == " ".join(WORDS[: max_tokens - 1]) + ELLIPSIS
    assert meter.count(cut) == max_tokens


def test_cut_properties_on_mixed_text(meter: TokenMeter) -> None:
    text = (
        "Internationalization of tokenizers: naïve café—emoji 😀😀, CJK 机器学习系统, "
        "URLs https://example.com/a?b=c and numbers 3.14159 " * 20
    )
    previous = ""
    for max_tokens in range(2, 120, 7):
        cut = meter.cut(text, max_tokens)
        assert meter.count(cut) <= max_tokens
        assert cut.endswith(ELLIPSIS)
        assert text.startswith(cut.removesuffix(ELLIPSIS))
        assert len(cut) >= len(previous)  # more room never keeps less
        previous = cut


def test_cut_is_deterministic(meter: TokenMeter) -> None:
    text = "lorem ipsum dolor sit amet " * 500
    assert meter.cut(text, 50) == meter.cut(text, 50)
