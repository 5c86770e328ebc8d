"""``processors.text.clean_text``: untrusted text made safe and bounded for prompts."""

from __future__ import annotations

import pytest

from processors.text import clean_text


def test_plain_text_is_unchanged() -> None:
    assert clean_text("Kafka streams, FAISS & LLMs!", 100) == "Kafka streams, FAISS & LLMs!"


def test_docstring_example() -> None:
    assert clean_text("Hi\x00 there\u202e!\n\nBye", 100) == "Hi there! Bye"


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x9b"])
def test_control_characters_are_dropped(control: str) -> None:
    assert clean_text(f"ab{control}cd", 100) == "abcd"


def test_ansi_escape_loses_its_escape_character() -> None:
    assert clean_text("\x1b[31mred\x1b[0m", 100) == "[31mred[0m"


@pytest.mark.parametrize(
    "bidi",
    ["\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2069"],
)
def test_bidi_controls_are_dropped(bidi: str) -> None:
    assert clean_text(f"pay{bidi}lap.exe", 100) == "paylap.exe"


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"])
def test_zero_width_and_format_characters_are_dropped(invisible: str) -> None:
    assert clean_text(f"in{invisible}visible", 100) == "invisible"


def test_whitespace_runs_collapse_to_one_space_and_ends_are_stripped() -> None:
    assert clean_text("  line one\n\n\tline two\r\n  line\u00a0three \u2028end  ", 100) == (
        "line one line two line three end"
    )


def test_only_invisible_characters_give_empty_text() -> None:
    assert clean_text("\u200b\u202e\x00 \n", 100) == ""


def test_non_latin_text_and_emoji_survive() -> None:
    text = "机器学习 — ниже 😀 مرحبا"
    assert clean_text(text, 100) == text


def test_template_looking_braces_are_verbatim() -> None:
    text = "{0} {__class__} {post.__init__.__globals__} %s ${HOME} {{x}}"
    assert clean_text(text, 200) == text


def test_text_at_the_limit_is_not_truncated() -> None:
    assert clean_text("a" * 10, 10) == "a" * 10


def test_truncation_ends_with_an_ellipsis_within_the_limit() -> None:
    result = clean_text("a" * 11, 10)
    assert result == "a" * 9 + "…"
    assert len(result) == 10


def test_truncation_does_not_leave_a_space_before_the_ellipsis() -> None:
    assert clean_text("abcd efgh ijkl", 6) == "abcd…"


def test_megabytes_of_text_are_cut_to_the_limit() -> None:
    result = clean_text("word " * 400_000, 2_000)
    assert len(result) == 2_000
    assert result == ("word " * 400)[:1_999] + "…"


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x85"])
def test_whitespace_control_characters_separate_words(separator: str) -> None:
    assert clean_text(f"line1{separator}line2", 100) == "line1 line2"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("\u200b" * 300 + "hello", 100, "hello"),
        ("a" + " " * 300 + "b", 100, "a b"),
        ("a \n\n\n b", 3, "a b"),
    ],
)
def test_content_after_a_long_invisible_run_is_kept(text: str, limit: int, expected: str) -> None:
    assert clean_text(text, limit) == expected
