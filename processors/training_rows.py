"""Assembling a dual-encoder training set (``schemas.training_set``) from an engagement log.

Shared by both builders: the synthetic world (``feedline.dual_data``) and the Kafka export
(``streams.training_export``). They feed engagements in time order and say how to render a
member or post prompt as of a moment; this module applies the layout's rules (time split,
one example per pair, hard negatives, eval rows, popularity).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import NamedTuple

import pyarrow as pa

from schemas.training_set import (
    EVAL_SCHEMA,
    EXAMPLES_SCHEMA,
    POSITIVES_SCHEMA,
    POSTS_SCHEMA,
    SEEN_SCHEMA,
    HistoryMode,
    NumberFormat,
    TrainingManifest,
    TrainingSet,
    TrainingSetError,
)

POSITIVE_ACTIONS = frozenset({"like", "comment", "share", "long_dwell"})
"""Actions that make a positive (those of ``feedline.world.POSITIVE_ACTIONS``)."""


class EngagementRow(NamedTuple):
    """One engagement, as the builders feed them in (sorted by ``ts_ms``)."""

    member_id: str
    post_id: str
    action: str
    ts_ms: int


class PostInfo(NamedTuple):
    """A post's fixed attributes, for ``posts.parquet``."""

    post_id: str
    author_id: str | None
    created_at_ms: int | None


MemberPrompt = Callable[[str, int, str | None], str | None]
"""``(member_id, ts_ms, target)`` → the member prompt as of just before ``ts_ms`` (``target``
is the example's post, None for eval rows), or None when the member has none."""
PostPrompt = Callable[[str, int], str | None]
"""``(post_id, at_ms)`` → the post prompt as of ``at_ms`` (inclusive), or None if it has none."""


class BuildSpec(NamedTuple):
    """The choices behind a training set; they all go into the manifest."""

    split_ms: int
    holdout_fraction: float
    source: str
    history: HistoryMode = "positive"
    numbers: NumberFormat = "percentile"
    max_hard_negatives: int = 4
    prompt_versions: dict[str, str] = {}  # noqa: RUF012 (never mutated; a NamedTuple default)
    positive_actions: frozenset[str] = POSITIVE_ACTIONS
    """What counts as a positive: the platform's default; a click on news (MIND)."""


def split_time(ts_ms: Iterable[int], holdout_fraction: float) -> int:
    """The time that leaves the last ``holdout_fraction`` of the engagement time span for
    evaluation (engagements at or after it); past every engagement when the fraction is 0.

    Raises:
        TrainingSetError: no engagements, or a fraction outside [0, 1).
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise TrainingSetError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    times = list(ts_ms)
    if not times:
        raise TrainingSetError("no engagements: generate or produce some before building")
    lo, hi = min(times), max(times)
    return hi + 1 if holdout_fraction == 0 else lo + int((hi - lo) * (1.0 - holdout_fraction))


class _Log:
    """What the tables need from the engagements, in one pass."""

    def __init__(
        self, rows: Iterable[EngagementRow], split_ms: int, positive_actions: frozenset[str]
    ) -> None:
        self.first_positive: dict[tuple[str, str], int] = {}
        self.positives: dict[str, set[str]] = defaultdict(set)
        self.train_impressions: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.seen: dict[tuple[str, str], None] = {}
        self.seen_before: dict[str, dict[str, None]] = defaultdict(dict)
        self.popularity: Counter[str] = Counter()
        self.rows = 0
        for member, post, action, ts in rows:
            self.rows += 1
            if action == "impression":
                self.seen[member, post] = None
                if ts < split_ms:
                    self.train_impressions[member].append((ts, post))
                    self.seen_before[member][post] = None
            elif ts < split_ms:
                self.popularity[post] += 1
            if action in positive_actions and (member, post) not in self.first_positive:
                self.first_positive[member, post] = ts
                self.positives[member].add(post)


def assemble_training_set(
    engagements: Iterable[EngagementRow],
    posts: Iterable[PostInfo],
    member_prompt: MemberPrompt,
    post_prompt: PostPrompt,
    spec: BuildSpec,
) -> TrainingSet:
    """The tables of the layout from engagements sorted by time and prompt look-ups.

    Examples, eval rows and posts whose prompt is unknown (None) are left out and counted in
    the manifest (``examples_skipped``, ``eval_skipped``, ``posts_without_prompt``).
    """
    log, skipped = _Log(engagements, spec.split_ms, spec.positive_actions), Counter[str]()
    posts_table = _posts(posts, log, post_prompt, spec.split_ms, skipped)
    known = set(posts_table.column("post_id").to_pylist())
    tables = {
        "examples": _examples(log, member_prompt, post_prompt, spec, skipped),
        "posts": posts_table,
        "seen": pa.Table.from_pylist(
            [{"member_id": m, "post_id": p} for m, p in log.seen], schema=SEEN_SCHEMA
        ),
        "positives": pa.Table.from_pylist(
            [
                {"member_id": m, "post_id": p, "first_ts_ms": t}
                for (m, p), t in log.first_positive.items()
            ],
            schema=POSITIVES_SCHEMA,
        ),
        "eval": _eval(log, known, member_prompt, spec.split_ms, skipped),
    }
    counts = {name: table.num_rows for name, table in tables.items()}
    counts |= {"engagements": log.rows} | {key: skipped[key] for key in sorted(skipped)}
    choices = {k: v for k, v in spec._asdict().items() if k != "positive_actions"}
    manifest = TrainingManifest(**choices, counts=counts)
    return TrainingSet(**tables, manifest=manifest)


def _posts(
    posts: Iterable[PostInfo],
    log: _Log,
    post_prompt: PostPrompt,
    split_ms: int,
    skipped: Counter[str],
) -> pa.Table:
    rows = []
    for info in posts:
        prompt = post_prompt(info.post_id, split_ms - 1)
        if prompt is None:
            skipped["posts_without_prompt"] += 1
            continue
        popularity = log.popularity[info.post_id]
        rows.append({**info._asdict(), "post_prompt": prompt, "popularity": popularity})
    return pa.Table.from_pylist(rows, schema=POSTS_SCHEMA)


def _examples(
    log: _Log,
    member_prompt: MemberPrompt,
    post_prompt: PostPrompt,
    spec: BuildSpec,
    skipped: Counter[str],
) -> pa.Table:
    rows = []
    for (member, post), ts in sorted(log.first_positive.items(), key=lambda item: item[1]):
        if ts >= spec.split_ms:
            continue
        member_text, post_text = member_prompt(member, ts, post), post_prompt(post, ts)
        if member_text is None or post_text is None:
            skipped["examples_skipped"] += 1
            continue
        ids, prompts = _hard_negatives(log, member, ts, post_prompt, spec.max_hard_negatives)
        rows.append(
            {
                "member_id": member,
                "ts_ms": ts,
                "member_prompt": member_text,
                "post_id": post,
                "post_prompt": post_text,
                "hard_negative_ids": ids,
                "hard_negative_prompts": prompts,
            }
        )
    return pa.Table.from_pylist(rows, schema=EXAMPLES_SCHEMA)


def _hard_negatives(
    log: _Log, member: str, ts: int, post_prompt: PostPrompt, limit: int
) -> tuple[list[str], list[str]]:
    """Train-period impressions never followed by a positive, nearest to ``ts`` first."""
    positives = log.positives[member]
    nearest = sorted((abs(t - ts), t, p) for t, p in log.train_impressions[member])
    ids: list[str] = []
    prompts: list[str] = []
    for _, _, post in nearest:
        if len(ids) >= limit:
            break
        if post in positives or post in ids or (prompt := post_prompt(post, ts)) is None:
            continue
        ids.append(post)
        prompts.append(prompt)
    return ids, prompts


def _eval(
    log: _Log, known: set[str], member_prompt: MemberPrompt, split_ms: int, skipped: Counter[str]
) -> pa.Table:
    relevant: dict[str, list[str]] = defaultdict(list)
    for (member, post), ts in sorted(log.first_positive.items(), key=lambda item: item[1]):
        if ts >= split_ms and post in known:
            relevant[member].append(post)
    rows = []
    for member in sorted(relevant):
        prompt = member_prompt(member, split_ms, None)
        if prompt is None:
            skipped["eval_skipped"] += 1
            continue
        targets = set(relevant[member])
        before = [p for p in log.seen_before[member] if p not in targets]
        rows.append(
            {
                "member_id": member,
                "member_prompt": prompt,
                "relevant_post_ids": relevant[member],
                "seen_before_split": before,
            }
        )
    return pa.Table.from_pylist(rows, schema=EVAL_SCHEMA)
