"""Micro-batching for the embedding worker.

Two steps, both pure: ``latest_per_entity`` drops requests superseded within a poll (only
the newest version of an entity is worth embedding), and ``token_budget_batches`` groups
prompts so that each forward pass pads to at most ``max_tokens`` (items × longest item),
sorting by length so short prompts are not padded to long ones.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")


def latest_per_entity(items: Sequence[T], key: Callable[[T], Hashable]) -> list[T]:
    """Keep the last item per key, in the order those last items appear.

    >>> latest_per_entity(["a1", "b1", "a2"], key=lambda s: s[0])
    ['b1', 'a2']
    """
    last_index = {key(item): i for i, item in enumerate(items)}
    return [item for i, item in enumerate(items) if last_index[key(item)] == i]


def token_budget_batches(
    lengths: Sequence[int], max_tokens: int, max_items: int
) -> list[list[int]]:
    """Group indices of ``lengths`` into batches with ``len(batch) * max(len) <= max_tokens``.

    An item longer than ``max_tokens`` gets a batch of its own. Every index appears exactly
    once; batches are returned shortest prompts first.

    >>> token_budget_batches([5, 3, 4, 100], max_tokens=12, max_items=8)
    [[1, 2], [0], [3]]
    """
    if max_tokens < 1 or max_items < 1:
        raise ValueError("max_tokens and max_items must be positive")
    batches: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        longest = lengths[index]  # ascending order: the newcomer is the longest so far
        if current and ((len(current) + 1) * longest > max_tokens or len(current) >= max_items):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
