"""Make untrusted text safe to place in a prompt.

Producers send arbitrary text: control characters, bidirectional overrides, megabytes of it.
Prompts are assembled by concatenation (never ``str.format`` on user text), so braces are
harmless; what remains is removing invisible or layout-breaking characters and bounding size.
"""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
# Bidi embeddings/overrides/isolates and marks can reorder what a reader (or a model) sees.
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(text: str, max_chars: int) -> str:
    """Drop control/format characters, collapse whitespace, cut to ``max_chars``.

    >>> clean_text("Hi\\x00 there\\u202e!\\n\\nBye", 100)
    'Hi there! Bye'
    """
    kept = "".join(ch for ch in text[: max_chars * 2] if _is_visible(ch))
    collapsed = _WHITESPACE.sub(" ", kept).strip()
    if len(collapsed) <= max_chars:
        return collapsed
    return collapsed[: max_chars - 1].rstrip() + "…"


def _is_visible(ch: str) -> bool:
    if ch in _BIDI_CONTROLS:
        return False
    category = unicodedata.category(ch)
    # Cc: control characters (whitespace among them becomes a space); Cf: format characters.
    if category == "Cc":
        return ch in "\t\n\r"
    return category != "Cf"
