"""Make untrusted text safe to place in a prompt.

Producers send arbitrary text: control characters, bidirectional overrides, megabytes of it.
Prompts are assembled by concatenation (never ``str.format`` on user text), so braces are
harmless; what remains is removing invisible or layout-breaking characters and bounding size.
"""

from __future__ import annotations

import unicodedata


def clean_text(text: str, max_chars: int) -> str:
    """Drop control/format characters, turn any whitespace run into one space, cut to
    ``max_chars`` (ending in "…" when cut).

    One pass that stops as soon as the limit is exceeded, so megabytes of input cost only
    what is kept, and invisible runs never push visible text out of the window.

    >>> clean_text("Hi\x00 there\u202e!\n\nBye", 100)
    'Hi there! Bye'
    """
    kept: list[str] = []
    pending_space = False
    for ch in text:
        if ch.isspace():
            pending_space = bool(kept)
        elif _is_visible(ch):
            if pending_space:
                kept.append(" ")
                pending_space = False
            kept.append(ch)
            if len(kept) > max_chars:
                return "".join(kept[: max_chars - 1]).rstrip() + "…"
    return "".join(kept)


def _is_visible(ch: str) -> bool:
    # Cc: control characters. Cf: format characters, among them the bidi embeddings,
    # overrides, isolates and marks (U+202A-E, U+2066-9, U+200E-F) that can reorder what a
    # reader or a model sees, and zero-width characters.
    return unicodedata.category(ch) not in ("Cc", "Cf")
