"""``models.dual.negatives``: hard and easy negatives never name a post the member liked."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from feedline.world import POSITIVE_ACTIONS, World, generate_world
from models.dual.negatives import NegativeSampler
from processors.training_rows import (
    BuildSpec,
    EngagementRow,
    PostInfo,
    assemble_training_set,
    split_time,
)
from schemas.training_set import (
    EXAMPLES_SCHEMA,
    TrainingSet,
)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world()  # the default world: 200 members, 1,000 posts


@pytest.fixture(scope="module")
def training_set(world: World) -> TrainingSet:
    """The default world's training set with stand-in prompts (``prompt:<post_id>``): the
    tables are those of ``world_training_set``, without the cost of rendering prompts."""
    split = split_time((e["ts_ms"] for e in world.engagements), 0.2)
    rows = [
        EngagementRow(e["member_id"], e["post_id"], e["action"], e["ts_ms"])
        for e in world.engagements
    ]
    posts = [PostInfo(p["post_id"], p["author_id"], p["created_at_ms"]) for p in world.posts]
    return assemble_training_set(
        rows,
        posts,
        lambda member, ts, _target: f"member:{member}@{ts}",
        lambda post, _at: f"prompt:{post}",
        BuildSpec(split_ms=split, holdout_fraction=0.2, source="test"),
    )


def pairs(world: World, actions: frozenset[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for e in world.engagements:
        if e["action"] in actions:
            found[e["member_id"]].add(e["post_id"])
    return found


def test_no_negative_is_ever_a_positive_and_easy_ones_were_never_seen(
    world: World, training_set: TrainingSet
) -> None:
    positives = pairs(world, POSITIVE_ACTIONS)  # from the world itself, not from the set
    seen = pairs(world, frozenset({"impression"}))
    sampler = NegativeSampler(training_set)
    rng = np.random.default_rng(0)
    examples = training_set.examples.to_pylist()
    hard_draws = easy_draws = 0
    for _ in range(2):
        for i, example in enumerate(examples):
            member = example["member_id"]
            hard = sampler.hard(i if i % 2 else example, 2, rng)
            easy = sampler.easy(member, 4, rng, exclude={example["post_id"]})
            for post, prompt in hard + easy:
                assert post not in positives[member], (member, post)
                assert prompt == f"prompt:{post}"
            assert not {post for post, _ in easy} & seen[member]
            assert example["post_id"] not in {post for post, _ in easy}
            assert len({post for post, _ in easy}) == len(easy) == 4
            hard_draws += len(hard)
            easy_draws += len(easy)
    assert hard_draws > 5_000 and easy_draws > 20_000
    for member, liked in positives.items():
        assert sampler.positives(member) == frozenset(liked)


def test_hard_negatives_are_a_random_subset_of_the_stored_ones(
    training_set: TrainingSet,
) -> None:
    sampler = NegativeSampler(training_set)
    rng = np.random.default_rng(1)
    stored = training_set.examples.column("hard_negative_ids")[0].as_py()
    assert len(stored) == 4
    assert sampler.hard(0, 0, rng) == [] and sampler.hard(0, -1, rng) == []
    assert sorted(p for p, _ in sampler.hard(np.int64(0), 10, rng)) == sorted(stored)
    picks = {tuple(p for p, _ in sampler.hard(0, 2, rng)) for _ in range(200)}
    assert all(len(pick) == 2 and set(pick) <= set(stored) for pick in picks)
    assert len(picks) > 6  # many different subsets and orders


def tiny_set(hard_ids: list[str]) -> TrainingSet:
    """Member m1 saw p1..p4 and liked p1 and p5; posts p1..p8 exist."""
    log = [EngagementRow("m1", f"p{i}", "impression", i) for i in range(1, 5)]
    log += [EngagementRow("m1", "p1", "like", 10), EngagementRow("m1", "p5", "share", 11)]
    training_set = assemble_training_set(
        log,
        [PostInfo(f"p{i}", None, None) for i in range(1, 9)],
        lambda member, ts, _target: member,
        lambda post, _at: post,
        BuildSpec(split_ms=100, holdout_fraction=0.2, source="test"),
    )
    examples = training_set.examples.to_pylist()
    examples[0] |= {"hard_negative_ids": hard_ids, "hard_negative_prompts": hard_ids}
    return training_set._replace(examples=pa.Table.from_pylist(examples, schema=EXAMPLES_SCHEMA))


def test_stored_hard_negatives_that_are_positives_are_filtered() -> None:
    sampler = NegativeSampler(tiny_set(["p2", "p5", "p1", "p3"]))  # a hand-edited set
    rng = np.random.default_rng(2)
    for _ in range(50):
        assert {post for post, _ in sampler.hard(0, 4, rng)} == {"p2", "p3"}
    row = {
        "member_id": "m1",
        "hard_negative_ids": ["p5", "p4"],
        "hard_negative_prompts": ["x", "y"],
    }
    assert sampler.hard(row, 2, rng) == [("p4", "y")]  # a row as a mapping works too


def test_easy_negatives_from_a_small_pool_are_what_is_left() -> None:
    sampler = NegativeSampler(tiny_set([]))
    rng = np.random.default_rng(3)
    for _ in range(20):
        drawn = sorted(post for post, _ in sampler.easy("m1", 10, rng))
        assert drawn == ["p6", "p7", "p8"]
    assert [p for p, _ in sampler.easy("m1", 5, rng, exclude={"p6", "p7"})] == ["p8"]
    assert sampler.easy("m1", 5, rng, exclude={"p6", "p7", "p8"}) == []
    assert sampler.easy("m1", 0, rng) == []
    assert len(sampler.easy("someone-new", 8, rng)) == 8  # unknown member: any post
