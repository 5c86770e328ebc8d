"""``processors.batching``: dropping superseded requests and token-budget micro-batches."""

from __future__ import annotations

import itertools
import random

import pytest

from processors.batching import latest_per_entity, token_budget_batches


def test_latest_per_entity_docstring_example() -> None:
    assert latest_per_entity(["a1", "b1", "a2"], key=lambda s: s[0]) == ["b1", "a2"]


def test_latest_per_entity_keeps_last_per_key_in_order_of_appearance() -> None:
    items = [("p", 1), ("m", 1), ("p", 2), ("q", 1), ("m", 2), ("p", 3)]
    assert latest_per_entity(items, key=lambda t: t[0]) == [("q", 1), ("m", 2), ("p", 3)]


def test_latest_per_entity_empty_and_unique() -> None:
    assert latest_per_entity([], key=lambda x: x) == []
    assert latest_per_entity([3, 1, 2], key=lambda x: x) == [3, 1, 2]


def test_latest_per_entity_property() -> None:
    rng = random.Random(1)
    for _ in range(200):
        items = [(rng.choice("abcdef"), i) for i in range(rng.randint(0, 30))]
        kept = latest_per_entity(items, key=lambda t: t[0])
        expected = {k: (k, i) for k, i in items}  # dict keeps the last value per key
        assert sorted(kept) == sorted(expected.values())
        assert kept == sorted(kept, key=lambda t: t[1])  # original order preserved


def test_token_budget_docstring_example() -> None:
    assert token_budget_batches([5, 3, 4, 100], max_tokens=12, max_items=8) == [[1, 2], [0], [3]]


def test_token_budget_empty_input() -> None:
    assert token_budget_batches([], max_tokens=10, max_items=2) == []


def test_token_budget_respects_max_items() -> None:
    assert token_budget_batches([1] * 5, max_tokens=1_000, max_items=2) == [[0, 1], [2, 3], [4]]


def test_token_budget_exact_fit() -> None:
    assert token_budget_batches([4, 4, 4], max_tokens=12, max_items=8) == [[0, 1, 2]]
    assert token_budget_batches([4, 4, 4], max_tokens=11, max_items=8) == [[0, 1], [2]]


def test_oversize_items_get_batches_of_their_own() -> None:
    assert token_budget_batches([50, 60, 2], max_tokens=10, max_items=8) == [[2], [0], [1]]


@pytest.mark.parametrize(("max_tokens", "max_items"), [(0, 1), (1, 0), (-5, 3), (3, -1)])
def test_non_positive_limits_raise(max_tokens: int, max_items: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        token_budget_batches([1, 2], max_tokens=max_tokens, max_items=max_items)


def test_token_budget_invariants_on_random_inputs() -> None:
    rng = random.Random(20260101)
    for _ in range(500):
        lengths = [rng.randint(1, 300) for _ in range(rng.randint(0, 80))]
        max_tokens = rng.randint(1, 1_024)
        max_items = rng.randint(1, 32)
        batches = token_budget_batches(lengths, max_tokens, max_items)
        flat = [i for batch in batches for i in batch]
        assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
        for batch in batches:
            assert batch, "no empty batches"
            assert len(batch) <= max_items
            longest = max(lengths[i] for i in batch)
            if len(batch) > 1 or longest <= max_tokens:
                assert len(batch) * longest <= max_tokens
        # shortest prompts first: batches are ordered by length, and so is each batch
        ordered = [lengths[i] for i in flat]
        assert ordered == sorted(ordered)


def test_token_budget_fills_batches_greedily() -> None:
    rng = random.Random(5)
    for _ in range(200):
        lengths = [rng.randint(1, 50) for _ in range(rng.randint(1, 40))]
        max_tokens, max_items = rng.randint(50, 400), rng.randint(1, 16)
        batches = token_budget_batches(lengths, max_tokens, max_items)
        for batch, following in itertools.pairwise(batches):
            # the next item would not have fitted: either the item cap or the token budget
            newcomer = lengths[following[0]]
            assert len(batch) == max_items or (len(batch) + 1) * newcomer > max_tokens
