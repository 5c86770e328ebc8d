"""Dictionary encoding of string attribute values, so filters run as numpy comparisons."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

ABSENT = -2
"""Code of an attribute the post does not carry."""
NONE = -1
"""Code of an attribute present with the value ``None``."""


class Vocabulary:
    """Stable small-integer codes for the distinct values of one attribute."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._values: list[str] = []

    def code(self, value: str | None) -> int:
        """The code of ``value`` (``NONE`` for None), adding new values."""
        if value is None:
            return NONE
        code = self._codes.get(value)
        if code is None:
            code = len(self._values)
            self._codes[value] = code
            self._values.append(value)
        return code

    def known_codes(self, values: Iterable[str]) -> np.ndarray:
        """Codes of those ``values`` seen before (unseen values match nothing anyway)."""
        return np.array([self._codes[v] for v in values if v in self._codes], dtype=np.int32)

    def value(self, code: int) -> str | None:
        """The value behind ``code`` (None for ``NONE``)."""
        return None if code < 0 else self._values[code]

    def values(self, codes: np.ndarray) -> list[str | None]:
        """``value`` for each code."""
        table = np.array([*self._values, None, None], dtype=object)
        return list(table[codes])  # NONE (-1) and ABSENT (-2) index the two trailing Nones
