"""The dual-encoder training set of the synthetic world (layout: ``schemas.training_set``).

Nothing after the split leaks into a feature: post prompts carry the percentiles (or, with
``numbers="raw"``, the raw counts) of engagements before the split, and a member prompt lists
only what the member did before the example's time. Two published ablations are switches:

- ``history="all"``: the member prompt lists every impressed post instead of only the
  positively engaged ones, cut just before the example post's own impression (its impression
  precedes the positive by seconds and would name the target);
- ``numbers="raw"``: post prompts say ``views 12345`` where the default says
  ``views <view_pct>71</view_pct>``; nothing else in the prompt changes.

Member prompts cost most (token counting); each (member, history length) renders once.

Example::

    library = PromptLibrary(PromptConfig(), TokenMeter(tokenizer))
    training_set = world_training_set(generate_world(), library)
    training_set.manifest.counts["examples"]       # 2,702 for the default world
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping

from feedline.world import POSITIVE_ACTIONS, World
from feedline.world_prompts import post_inputs, raw_counts
from processors.percentiles import render_percentile
from processors.prompts import PromptLibrary
from processors.training_rows import (
    BuildSpec,
    EngagementRow,
    PostInfo,
    assemble_training_set,
    split_time,
)
from schemas import MemberProfile, PostCreated
from schemas.training_set import (
    HistoryMode,
    NumberFormat,
    TrainingSet,
)

RAW_SUFFIX = "+raw-counts"
ALL_HISTORY_SUFFIX = "+all-impressions"


def world_training_set(
    world: World,
    library: PromptLibrary,
    *,
    holdout_fraction: float = 0.2,
    history: HistoryMode = "positive",
    numbers: NumberFormat = "percentile",
    max_hard_negatives: int = 4,
) -> TrainingSet:
    """The world's training set: train-period positives with time-aware member prompts, post
    prompts as of the split, hard negatives, and the eval-period targets.

    Raises:
        TrainingSetError: the world has no engagements, or ``holdout_fraction`` is not in
            [0, 1).
    """
    split = split_time((e["ts_ms"] for e in world.engagements), holdout_fraction)
    posts = world_post_prompts(world, library, split, numbers)
    members = WorldMemberPrompts(world, library, history)
    spec = BuildSpec(
        split_ms=split,
        holdout_fraction=holdout_fraction,
        source=_source(world),
        history=history,
        numbers=numbers,
        max_hard_negatives=max_hard_negatives,
        prompt_versions=_versions(library, history, numbers),
    )
    rows = (
        EngagementRow(e["member_id"], e["post_id"], e["action"], e["ts_ms"])
        for e in world.engagements
    )
    infos = (PostInfo(p["post_id"], p["author_id"], p["created_at_ms"]) for p in world.posts)
    return assemble_training_set(
        rows, infos, members.prompt, lambda post_id, _at_ms: posts.get(post_id), spec
    )


def world_post_prompts(
    world: World, library: PromptLibrary, split_ms: int, numbers: NumberFormat = "percentile"
) -> dict[str, str]:
    """post_id → its prompt from the engagements before ``split_ms``."""
    before = dataclasses.replace(
        world, engagements=[e for e in world.engagements if e["ts_ms"] < split_ms]
    )
    inputs = post_inputs(before)
    if numbers == "percentile":
        return {p: library.render_post(post, pcts) for p, (post, pcts) in inputs.items()}
    counts = raw_counts(before)
    return {
        p: render_post_raw(library, post, pcts, counts[p]) for p, (post, pcts) in inputs.items()
    }


def render_post_raw(
    library: PromptLibrary,
    post: PostCreated,
    percentiles: Mapping[str, int],
    counts: Mapping[str, int],
) -> str:
    """The post prompt with raw counts (``views 12345``) in place of percentile tokens.

    The percentile rendering with each ``<tag>N</tag>`` replaced by the count: user text can
    never hold a wrapper token (``UserText`` strips them), so only the engagement line changes.
    A longer number that pushes the prompt over the budget cuts the post text, as usual.
    """
    text = library.render_post(post, percentiles)
    for feature in library.config.features:
        if feature in percentiles:
            tokens = render_percentile(feature, percentiles[feature])
            text = text.replace(tokens, str(counts.get(feature, 0)), 1)
    budget = library.config.token_budget - library.meter.special_tokens
    return text if library.meter.count(text) <= budget else library.meter.cut(text, budget)


class WorldMemberPrompts:
    """Time-aware member prompts: the profile plus the history before a moment.

    ``history="positive"``: posts positively engaged before ``ts_ms``, by first positive.
    ``history="all"``: posts impressed before ``ts_ms`` and before the target's impression.
    """

    def __init__(self, world: World, library: PromptLibrary, history: HistoryMode) -> None:
        self.library = library
        self.mode: HistoryMode = history
        self._profiles = {m["member_id"]: m for m in world.members}
        self._posts = {p["post_id"]: p for p in world.posts}
        self._summaries: dict[str, str] = {}
        self._cache: dict[tuple[str, int], str] = {}
        self._first_seen: dict[tuple[str, str], int] = {}
        timelines: dict[str, list[tuple[int, str]]] = defaultdict(list)
        done: set[tuple[str, str]] = set()
        for e in world.engagements:  # by ts_ms: the first event of a pair comes first
            key = (e["member_id"], e["post_id"])
            if e["action"] == "impression":
                self._first_seen.setdefault(key, e["ts_ms"])
            if key not in done and _counts_as_history(e["action"], history):
                done.add(key)
                timelines[e["member_id"]].append((e["ts_ms"], e["post_id"]))
        self._times = {m: [t for t, _ in items] for m, items in timelines.items()}
        self._ids = {m: [p for _, p in items] for m, items in timelines.items()}

    def history_ids(self, member_id: str, ts_ms: int, target: str | None = None) -> list[str]:
        """The post ids the member's prompt lists at ``ts_ms``, oldest first (before the
        prompt library keeps only the newest that fit)."""
        cutoff = ts_ms
        if self.mode == "all" and target is not None:
            cutoff = min(cutoff, self._first_seen.get((member_id, target), cutoff))
        count = bisect_left(self._times.get(member_id, []), cutoff)
        return self._ids.get(member_id, [])[:count]

    def prompt(self, member_id: str, ts_ms: int, target: str | None = None) -> str | None:
        """The member prompt as of just before ``ts_ms``; None for an unknown member."""
        if member_id not in self._profiles:
            return None
        history = self.history_ids(member_id, ts_ms, target)
        key = (member_id, len(history))
        if key not in self._cache:
            profile = MemberProfile.model_validate(self._profiles[member_id])
            summaries = [self._summary(p) for p in history]
            self._cache[key] = self.library.render_member(profile, summaries)
        return self._cache[key]

    def _summary(self, post_id: str) -> str:
        if post_id not in self._summaries:
            post = PostCreated.model_validate(self._posts[post_id])
            self._summaries[post_id] = self.library.summary(post)
        return self._summaries[post_id]


def _counts_as_history(action: str, history: HistoryMode) -> bool:
    return action in POSITIVE_ACTIONS if history == "positive" else action == "impression"


def _versions(
    library: PromptLibrary, history: HistoryMode, numbers: NumberFormat
) -> dict[str, str]:
    post = library.post_version + (RAW_SUFFIX if numbers == "raw" else "")
    member = library.member_version + (ALL_HISTORY_SUFFIX if history == "all" else "")
    return {"post": post, "member": member}


def _source(world: World) -> str:
    config = world.config
    return (
        f"world(seed={config.seed}, members={config.members}, authors={config.authors}, "
        f"posts={config.posts})"
    )
