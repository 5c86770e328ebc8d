"""The synthetic world's posts and members as prompt-library inputs.

Post percentiles are taken against sketches of every post's final counts; a member's history
is the summaries of their positively engaged posts, oldest first. Used by
``feedline world prompts`` and by the prompt benchmarks.
"""

from __future__ import annotations

from collections import Counter

from feedline.world import POSITIVE_ACTIONS, World
from processors.feature_sketches import ACTION_COUNTERS
from processors.percentiles import FEATURES, PercentileSketch
from processors.prompts import PromptLibrary
from schemas import MemberProfile, PostCreated


def raw_counts(world: World) -> dict[str, dict[str, int]]:
    """post_id → feature → raw count over the world's engagements (and author followers)."""
    counts: dict[str, Counter[str]] = {p["post_id"]: Counter() for p in world.posts}
    for engagement in world.engagements:
        if (feature := ACTION_COUNTERS.get(engagement["action"])) is not None:
            counts[engagement["post_id"]][feature] += 1
    for post in world.posts:
        counts[post["post_id"]]["followers"] = post.get("author_followers") or 0
    return {post_id: dict(c) for post_id, c in counts.items()}


def post_inputs(world: World) -> dict[str, tuple[PostCreated, dict[str, int]]]:
    """post_id → (post, percentile per feature of its final counts among all posts)."""
    counts = raw_counts(world)
    sketches = {f: PercentileSketch.of(c.get(f, 0) for c in counts.values()) for f in FEATURES}
    return {
        p["post_id"]: (
            PostCreated.model_validate(p),
            {f: sketches[f].percentile(counts[p["post_id"]].get(f, 0)) for f in FEATURES},
        )
        for p in world.posts
    }


def member_inputs(
    world: World, library: PromptLibrary
) -> dict[str, tuple[MemberProfile, list[str]]]:
    """member_id → (profile, summaries of positively engaged posts, oldest first)."""
    posts = {p["post_id"]: PostCreated.model_validate(p) for p in world.posts}
    history: dict[str, list[str]] = {m["member_id"]: [] for m in world.members}
    seen: set[tuple[str, str]] = set()
    for engagement in world.engagements:
        key = (engagement["member_id"], engagement["post_id"])
        if engagement["action"] in POSITIVE_ACTIONS and key not in seen:
            seen.add(key)
            history[engagement["member_id"]].append(library.summary(posts[engagement["post_id"]]))
    return {
        m["member_id"]: (MemberProfile.model_validate(m), history[m["member_id"]])
        for m in world.members
    }
