"""``feedline.dual_data``: the world's training set is time-aware and its ablations differ only
where they should."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections import defaultdict
from pathlib import Path

import pytest

from feedline.dual_data import WorldMemberPrompts, world_training_set
from feedline.world import POSITIVE_ACTIONS, World, WorldConfig, generate_world
from processors.prompts import PromptConfig, PromptLibrary
from processors.token_budget import TokenMeter
from schemas import PostCreated
from schemas.training_set import TrainingSet, read_training_set, write_training_set


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig(members=40, posts=120, authors=20))


@pytest.fixture(scope="module")
def library(meter: TokenMeter) -> PromptLibrary:
    return PromptLibrary(PromptConfig(), meter)


@pytest.fixture(scope="module")
def default_set(world: World, library: PromptLibrary) -> TrainingSet:
    return world_training_set(world, library)


def first_positives(world: World) -> dict[tuple[str, str], int]:
    first: dict[tuple[str, str], int] = {}
    for e in world.engagements:
        if e["action"] in POSITIVE_ACTIONS:
            first.setdefault((e["member_id"], e["post_id"]), e["ts_ms"])
    return first


def history_line(prompt: str) -> list[str]:
    """The summaries a member prompt lists."""
    for line in prompt.splitlines():
        if line.startswith("engaged with: "):
            return line.removeprefix("engaged with: ").split(" || ")
    return []


def test_examples_are_train_positives_and_eval_targets_come_after_the_split(
    world: World, default_set: TrainingSet
) -> None:
    split = default_set.manifest.split_ms
    first = first_positives(world)
    examples = default_set.examples.to_pylist()
    assert examples and all(e["ts_ms"] < split for e in examples)
    assert {(e["member_id"], e["post_id"]) for e in examples} == {
        pair for pair, ts in first.items() if ts < split
    }
    assert all(first[e["member_id"], e["post_id"]] == e["ts_ms"] for e in examples)
    relevant = {
        (row["member_id"], post)
        for row in default_set.eval.to_pylist()
        for post in row["relevant_post_ids"]
    }
    assert relevant == {pair for pair, ts in first.items() if ts >= split}
    assert default_set.posts.num_rows == len(world.posts)


def test_member_prompts_list_nothing_engaged_at_or_after_the_example(
    world: World, library: PromptLibrary, default_set: TrainingSet
) -> None:
    summaries = {p["post_id"]: library.summary(PostCreated.model_validate(p)) for p in world.posts}
    first = first_positives(world)
    by_member: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for (member, post), ts in first.items():
        by_member[member].append((ts, post))
    members = WorldMemberPrompts(world, library, "positive")
    for example in default_set.examples.to_pylist():
        member, ts = example["member_id"], example["ts_ms"]
        history = members.history_ids(member, ts, example["post_id"])
        assert history == [p for t, p in sorted(by_member[member]) if t < ts]
        listed = history_line(example["member_prompt"])
        assert listed == [summaries[p] for p in history][len(history) - len(listed) :]
        earlier = {summaries[p] for p in history}
        later = {summaries[p] for t, p in by_member[member] if t >= ts}
        assert not (later - earlier) & set(listed)
        assert example["member_prompt"] == members.prompt(member, ts, example["post_id"])


def test_hard_negatives_were_impressed_in_train_and_never_positive(
    world: World, default_set: TrainingSet
) -> None:
    split = default_set.manifest.split_ms
    impressed = {
        (e["member_id"], e["post_id"])
        for e in world.engagements
        if e["action"] == "impression" and e["ts_ms"] < split
    }
    positive = set(first_positives(world))
    columns = default_set.posts.select(["post_id", "post_prompt"]).to_pydict().values()
    prompts = dict(zip(*columns, strict=True))
    total = 0
    for example in default_set.examples.to_pylist():
        ids = example["hard_negative_ids"]
        assert len(ids) == len(set(ids)) <= 4
        for post, prompt in zip(ids, example["hard_negative_prompts"], strict=True):
            assert (example["member_id"], post) in impressed
            assert (example["member_id"], post) not in positive
            assert prompt == prompts[post]
        total += len(ids)
    assert total > default_set.examples.num_rows  # most examples have several


def test_raw_numbers_change_only_the_engagement_line(
    world: World, library: PromptLibrary, default_set: TrainingSet
) -> None:
    raw = world_training_set(world, library, numbers="raw")
    assert raw.manifest.numbers == "raw"
    assert raw.manifest.prompt_versions["post"].endswith("+raw-counts")
    assert raw.examples.column("member_prompt").equals(default_set.examples.column("member_prompt"))
    pct = default_set.posts.column("post_prompt").to_pylist()
    for raw_prompt, pct_prompt in zip(
        raw.posts.column("post_prompt").to_pylist(), pct, strict=True
    ):
        raw_lines, pct_lines = raw_prompt.splitlines(), pct_prompt.splitlines()
        differ = [i for i, (a, b) in enumerate(zip(raw_lines, pct_lines, strict=True)) if a != b]
        assert differ == [1] and pct_lines[1].startswith("engagement: ")
        assert "_pct>" not in raw_lines[1] and "views " in raw_lines[1]
    post = world.posts[0]
    views = sum(
        e["post_id"] == post["post_id"]
        and e["action"] == "impression"
        and e["ts_ms"] < raw.manifest.split_ms
        for e in world.engagements
    )
    first_raw = raw.posts.column("post_prompt")[0].as_py()
    assert f"views {views} |" in first_raw
    assert f"author followers {post['author_followers']}" in first_raw


def test_all_history_lists_more_posts_than_positive_history(
    world: World, library: PromptLibrary, default_set: TrainingSet
) -> None:
    every = world_training_set(world, library, history="all")
    assert every.manifest.history == "all"
    assert every.examples.column("post_id").equals(default_set.examples.column("post_id"))
    split = every.manifest.split_ms
    positive, members = (
        WorldMemberPrompts(world, library, "positive"),
        WorldMemberPrompts(world, library, "all"),
    )
    eval_members = every.eval.column("member_id").to_pylist()
    positive_ids = [positive.history_ids(m, split) for m in eval_members]
    all_ids = [members.history_ids(m, split) for m in eval_members]
    assert all(
        set(p) <= set(a) and len(a) > len(p) for p, a in zip(positive_ids, all_ids, strict=True)
    )
    # The 256-token budget keeps only the newest few either way: "all" changes which posts
    # the prompt lists (recent impressions) more than how many.
    pairs = zip(
        every.eval.column("member_prompt").to_pylist(),
        default_set.eval.column("member_prompt").to_pylist(),
        strict=True,
    )
    assert sum(a != p for a, p in pairs) > every.eval.num_rows // 2
    for example in every.examples.to_pylist()[:200]:  # the target's own impression: not listed
        assert example["post_id"] not in members.history_ids(
            example["member_id"], example["ts_ms"], example["post_id"]
        )


def test_world_set_round_trips(tmp_path: Path, default_set: TrainingSet) -> None:
    write_training_set(tmp_path, default_set)
    back = read_training_set(tmp_path)
    assert back.manifest == default_set.manifest
    assert back.examples.equals(default_set.examples) and back.eval.equals(default_set.eval)
    assert back.manifest.source.startswith("world(seed=7, members=40")
