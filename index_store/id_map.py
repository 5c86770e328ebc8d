"""Persistent mapping between string post ids and the int64 ids the kNN backends use.

Ids are handed out in increasing order and never reused, so an int id in a snapshot, a
backend file or a log line always means the same post. A post keeps its int id across
re-embeddings; the mapping itself is saved in every snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class IdMap:
    """``str`` post id ↔ ``int`` id, never reusing an int id."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str | None] = []

    @property
    def next_id(self) -> int:
        """The id the next new post gets (ids below it may have been handed out)."""
        return len(self._names)

    def get(self, name: str) -> int | None:
        """The int id of ``name``, or None if it never had one."""
        return self._ids.get(name)

    def assign(self, name: str) -> int:
        """The int id of ``name``, handing out the next one if it has none."""
        int_id = self._ids.get(name)
        if int_id is None:
            int_id = len(self._names)
            self._ids[name] = int_id
            self._names.append(name)
        return int_id

    def name(self, int_id: int) -> str:
        """The post id behind ``int_id`` (KeyError if it was never handed out)."""
        name = self._names[int_id] if 0 <= int_id < len(self._names) else None
        if name is None:
            raise KeyError(int_id)
        return name

    def names(self, int_ids: Iterable[int]) -> list[str]:
        """``name`` for each id."""
        return [self.name(int(i)) for i in int_ids]

    def ids(self, names: Iterable[str]) -> np.ndarray:
        """int64 ids of the names that have one (others are skipped)."""
        found = [self._ids[n] for n in names if n in self._ids]
        return np.array(found, dtype=np.int64)

    @classmethod
    def restore(cls, names: Sequence[str], int_ids: np.ndarray, next_id: int) -> IdMap:
        """Rebuild from the (name, id) pairs of a snapshot and its ``next_id``."""
        if len(int_ids) and int(int_ids.max()) >= next_id:
            raise ValueError(f"id {int(int_ids.max())} is not below next_id {next_id}")
        restored = cls()
        restored._names = [None] * next_id
        for name, int_id in zip(names, int_ids.tolist(), strict=True):
            restored._ids[name] = int_id
            restored._names[int_id] = name
        return restored
