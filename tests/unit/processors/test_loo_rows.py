"""The leave-one-out training set: what trains, what is held out, and what is refused."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from processors.loo_rows import LooSpec, Step, Target, assemble_leave_one_out
from processors.training_rows import PostInfo
from schemas.training_set import TrainingSetError

POSTS = [PostInfo(f"p{i}", "a", 0) for i in range(6)]
PROMPTS = {p.post_id: f"post {p.post_id}" for p in POSTS}


def member_prompt(member: str, history: Sequence[str]) -> str | None:
    return f"{member}: " + " ".join(history) if history else None


def sequences() -> dict[str, list[Step]]:
    return {
        "m1": [Step("p0", 1), Step("p1", 2), Step("p2", 3), Step("p3", 4), Step("p4", 5)],
        "m2": [Step("p1", 1), Step("p2", 6), Step("p5", 7)],
        "m3": [Step("p0", 1), Step("p3", 2)],
    }


def test_last_is_test_second_to_last_valid_and_the_rest_trains() -> None:
    built = assemble_leave_one_out(sequences(), POSTS, PROMPTS, member_prompt, LooSpec("toy"))
    assert built.manifest.split == "leave_one_out"
    examples = built.examples.to_pylist()
    assert [(e["member_id"], e["post_id"], e["member_prompt"]) for e in examples] == [
        ("m1", "p1", "m1: p0"),
        ("m1", "p2", "m1: p0 p1"),
    ]  # m2 has one training item: nothing before it to learn from
    assert "examples_without_history" not in built.manifest.counts
    heldout = {(r["member_id"], r["stage"]): r for r in built.heldout.to_pylist()}
    assert heldout["m1", "valid"]["target_post_id"] == "p3"
    assert heldout["m1", "valid"]["history_post_ids"] == ["p0", "p1", "p2"]
    assert heldout["m1", "test"]["target_post_id"] == "p4"
    assert heldout["m1", "test"]["member_prompt"] == "m1: p0 p1 p2 p3"
    assert ("m3", "valid") not in heldout and built.manifest.counts["members_too_short"] == 1
    evaluated = built.eval.to_pylist()
    assert [(r["member_id"], r["relevant_post_ids"]) for r in evaluated] == [
        ("m1", ["p4"]),
        ("m2", ["p5"]),
    ]


def test_popularity_counts_only_the_training_part() -> None:
    built = assemble_leave_one_out(sequences(), POSTS, PROMPTS, member_prompt, LooSpec("toy"))
    columns = built.posts.to_pydict()
    popularity = dict(zip(columns["post_id"], columns["popularity"], strict=True))
    # m1 trains on p0 p1 p2; m2 on p1; m3 is too short to split and counts whole
    assert popularity == {"p0": 2, "p1": 2, "p2": 1, "p3": 1, "p4": 0, "p5": 0}


def test_a_given_split_brings_its_negatives_and_must_agree_with_the_log() -> None:
    given = {
        ("m1", "valid"): Target("p3", ("p5", "p5")),
        ("m1", "test"): Target("p4", ("p5",)),
        ("m2", "valid"): Target("p2"),
        ("m2", "test"): Target("p5"),
    }
    built = assemble_leave_one_out(
        sequences(), POSTS, PROMPTS, member_prompt, LooSpec("toy"), given
    )
    rows = {(r["member_id"], r["stage"]): r for r in built.heldout.to_pylist()}
    assert rows["m1", "valid"]["negative_post_ids"] == ["p5", "p5"]
    wrong = given | {("m2", "test"): Target("p1")}
    with pytest.raises(TrainingSetError, match=r"m2.*not the last two"):
        assemble_leave_one_out(sequences(), POSTS, PROMPTS, member_prompt, LooSpec("t"), wrong)
