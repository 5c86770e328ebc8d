"""``models.dual.examples``: epochs from sequences or samplers, and batch assembly."""

from __future__ import annotations

import numpy as np
import pytest

from models.dual.examples import (
    ContrastiveExample,
    TrainingDataError,
    build_batch,
    epoch_examples,
)


def example(
    name: str, hard: tuple[str, ...] = (), easy: tuple[str, ...] = ()
) -> ContrastiveExample:
    return ContrastiveExample(f"member {name}", f"post {name}", hard, easy)


def test_a_sequence_is_every_epoch() -> None:
    examples = [example("a"), example("b")]
    rng = np.random.default_rng(0)
    assert epoch_examples(examples, 0, rng) is examples
    assert epoch_examples(examples, 3, rng) is examples


def test_a_sampler_is_called_with_the_epoch_and_rng() -> None:
    calls: list[int] = []
    rng = np.random.default_rng(0)

    def sampler(epoch: int, generator: np.random.Generator) -> list[ContrastiveExample]:
        calls.append(epoch)
        assert generator is rng
        return [example(str(epoch))]

    assert epoch_examples(sampler, 2, rng) == [example("2")]
    assert calls == [2]


def test_an_empty_epoch_is_an_error() -> None:
    with pytest.raises(TrainingDataError, match="epoch 1 has no training examples"):
        epoch_examples(lambda epoch, rng: [], 1, np.random.default_rng(0))


def test_batch_puts_positives_first_then_negatives() -> None:
    batch = build_batch(
        [example("a", ("hard a",), ("easy a",)), example("b", ("hard b",), ("easy b",))],
        hard_negatives=1,
        easy_negatives=1,
        rng=np.random.default_rng(0),
    )
    assert batch.queries == ["member a", "member b"]
    assert batch.docs == ["post a", "post b", "hard a", "easy a", "hard b", "easy b"]
    assert batch.exclude.shape == (2, 6)
    assert not batch.exclude.any()


def test_negative_counts_cap_what_an_example_carries() -> None:
    many = example("a", tuple(f"hard {i}" for i in range(5)), tuple(f"easy {i}" for i in range(5)))
    batch = build_batch([many], hard_negatives=2, easy_negatives=0, rng=np.random.default_rng(0))
    assert len(batch.docs) == 3
    assert all(doc.startswith("hard") for doc in batch.docs[1:])
    none = build_batch([many], hard_negatives=0, easy_negatives=0, rng=np.random.default_rng(0))
    assert none.docs == ["post a"]
    fewer = build_batch([example("b", ("h",))], 2, 3, np.random.default_rng(0))
    assert fewer.docs == ["post b", "h"]  # fewer than asked for is fine


def test_the_subset_varies_with_the_rng() -> None:
    many = example("a", tuple(f"hard {i}" for i in range(20)))
    picks = {
        tuple(build_batch([many], 1, 0, np.random.default_rng(seed)).docs) for seed in range(10)
    }
    assert len(picks) > 1


def test_duplicate_negatives_and_negatives_that_are_positives_are_dropped() -> None:
    batch = build_batch(
        [example("a", ("shared", "post b")), example("b", ("shared",), ("post a",))],
        hard_negatives=2,
        easy_negatives=1,
        rng=np.random.default_rng(0),
    )
    assert batch.docs == ["post a", "post b", "shared"]


def test_a_post_engaged_by_two_members_is_not_a_negative_for_either() -> None:
    a1 = ContrastiveExample("member 1", "post x", ("n1",), ())
    a2 = ContrastiveExample("member 2", "post x", ("n2",), ())
    batch = build_batch([a1, a2, example("c")], 1, 1, np.random.default_rng(0))
    assert batch.docs == ["post x", "post x", "post c", "n1", "n2"]
    expected = np.zeros((3, 5), dtype=bool)
    expected[0, 1] = expected[1, 0] = True
    assert np.array_equal(batch.exclude, expected)


def test_a_batch_carries_each_row_s_latest_post() -> None:
    first = ContrastiveExample("member a", "post a", (), (), latest="post z")
    second = example("b")
    batch = build_batch([first, second], 0, 0, np.random.default_rng(0))
    assert batch.latest == ["post z", None]


def test_the_latest_post_is_the_member_s_previous_positive_in_time() -> None:
    from models.dual.training_examples import previous_positives

    members = ["m1", "m2", "m1", "m1", "m2"]
    times = [30, 10, 10, 20, 20]
    prompts = ["p3", "q1", "p1", "p2", "q2"]
    assert previous_positives(members, times, prompts) == ["p2", None, None, "p1", "q1"]
    # a tie in time keeps row order
    assert previous_positives(["m", "m"], [5, 5], ["a", "b"]) == [None, "a"]
