"""``processors.reembed``: when posts and members are embedded again."""

from __future__ import annotations

import pytest

from processors.reembed import (
    POSITIVE_ACTIONS,
    ReembedPolicy,
    largest_move,
    member_due,
    post_decision,
)

POLICY = ReembedPolicy()


def test_documented_defaults() -> None:
    assert (
        ReembedPolicy(
            bucket_step=10,
            post_min_interval_ms=60_000,
            member_debounce_ms=5_000,
            positive_actions=frozenset({"like", "comment", "share", "long_dwell"}),
            history_kept=1_000,
            negatives_kept=200,
        )
        == POLICY
    )
    assert POLICY.positive_actions == POSITIVE_ACTIONS


@pytest.mark.parametrize(
    ("before", "now", "move"),
    [
        ({}, {}, 0),
        ({"views": 40}, {"views": 40}, 0),
        ({"views": 40, "likes": 10}, {"views": 45, "likes": 2}, 8),
        ({"views": 90}, {"views": 10}, 80),
        ({"views": 40}, {"views": 40, "followers": 7}, 7),  # a new feature counts fully
        ({"views": 40, "followers": 70}, {"views": 41}, 1),  # a vanished one does not
    ],
)
def test_largest_move(before: dict[str, int], now: dict[str, int], move: int) -> None:
    assert largest_move(before, now) == move


@pytest.mark.parametrize(
    ("now_views", "now_ms", "decision"),
    [
        (49, 1_000_000, "below_step"),
        (31, 1_000_000, "below_step"),
        (50, 1_000_000 + 59_999, "min_interval"),
        (30, 1_000_001, "min_interval"),
        (50, 1_000_000 + 60_000, "bucket_moved"),
        (30, 9_000_000, "bucket_moved"),
        (49, 9_000_000, "below_step"),  # however long it has been
    ],
)
def test_post_decision(now_views: int, now_ms: int, decision: str) -> None:
    before = {"views": 40, "likes": 5}
    now = {"views": now_views, "likes": 5}
    assert post_decision(POLICY, before, now, 1_000_000, now_ms) == decision


def test_post_decision_honours_the_policy() -> None:
    fine = ReembedPolicy(bucket_step=1, post_min_interval_ms=0)
    assert post_decision(fine, {"views": 1}, {"views": 2}, 5, 5) == "bucket_moved"
    assert post_decision(fine, {"views": 1}, {"views": 1}, 5, 5) == "below_step"


@pytest.mark.parametrize(
    ("last_prompt_ms", "now_ms", "due"),
    [
        (0, 5_000, True),  # a member never prompted is due at once
        (10_000, 10_000, False),
        (10_000, 14_999, False),
        (10_000, 15_000, True),
    ],
)
def test_member_due(last_prompt_ms: int, now_ms: int, due: bool) -> None:
    assert member_due(POLICY, last_prompt_ms, now_ms) is due
