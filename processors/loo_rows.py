"""Assembling a leave-one-out training set (``schemas.training_set``, ``split="leave_one_out"``).

The protocol of the sequential-recommendation literature (SASRec, BERT4Rec, UniSRec, HSTU):
each member's interactions in time order; the last one is the test target, the one before it
the validation target, everything earlier trains. Sources that ship their own split (LRD's
dev/test with 99 sampled negatives, RecBole's valid/test files) pass it in and it is used
as is.

- ``examples``: every training interaction after the member's first, with the member's prompt
  from the interactions before it (a member with no history and no profile has no prompt
  worth learning from: those are counted as ``examples_without_history``);
- ``heldout``: the ``valid`` and ``test`` rows (history = everything before the target);
- ``eval``: the test rows again, in the time-split shape, so ``feedline eval retrieval``
  also reads the set;
- ``posts``: every item, ``popularity`` = positive interactions in the training part.

Members with fewer than three interactions cannot be split and are counted
(``members_too_short``), never silently dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import pyarrow as pa

from processors.training_rows import PostInfo
from schemas.training_set import (
    EVAL_SCHEMA,
    EXAMPLES_SCHEMA,
    HELDOUT_SCHEMA,
    POSITIVES_SCHEMA,
    POSTS_SCHEMA,
    SEEN_SCHEMA,
    NumberFormat,
    TrainingManifest,
    TrainingSet,
    TrainingSetError,
)

Stage = Literal["valid", "test"]
LooMemberPrompt = Callable[[str, Sequence[str]], str | None]
"""``(member_id, history post ids oldest first)`` → the member prompt, or None for none."""


class Step(NamedTuple):
    """One positive interaction of a member's sequence."""

    post_id: str
    ts_ms: int


class Target(NamedTuple):
    """A held-out target a source ships: the post and its sampled negatives."""

    post_id: str
    negative_post_ids: tuple[str, ...] = ()


class LooSpec(NamedTuple):
    """The choices behind the set; they go into the manifest."""

    source: str
    numbers: NumberFormat = "percentile"
    prompt_versions: dict[str, str] = {}  # noqa: RUF012 (never mutated; a NamedTuple default)


def assemble_leave_one_out(
    sequences: Mapping[str, Sequence[Step]],
    posts: Sequence[PostInfo],
    post_prompts: Mapping[str, str],
    member_prompt: LooMemberPrompt,
    spec: LooSpec,
    given: Mapping[tuple[str, Stage], Target] | None = None,
) -> TrainingSet:
    """The tables from each member's positive interactions in time order.

    ``given`` maps ``(member_id, "valid" | "test")`` to the source's own targets; a member's
    sequence must then end with its valid and test targets (a source whose split disagrees
    with its own log is an error, not a silent re-split).
    """
    skipped: Counter[str] = Counter()
    examples, heldout, positives = [], [], []
    last_train_ts = 0
    for member in sorted(sequences):
        steps = list(sequences[member])
        for step in steps:
            positives.append((member, step.post_id, step.ts_ms))
        if len(steps) < 3:
            skipped["members_too_short"] += 1
            continue
        targets = _targets(member, steps, given)
        history = [s.post_id for s in steps]
        for i in range(1, len(steps) - 2):
            prompt = member_prompt(member, history[:i])
            if prompt is None:
                skipped["examples_without_history"] += 1
                continue
            examples.append(_example(member, steps[i], prompt, post_prompts))
        last_train_ts = max(last_train_ts, steps[-3].ts_ms)
        for stage, end, target in (("valid", -2, targets[0]), ("test", -1, targets[1])):
            prompt = member_prompt(member, history[:end])
            if prompt is None:
                skipped[f"{stage}_without_prompt"] += 1
                continue
            heldout.append(
                {
                    "member_id": member,
                    "stage": stage,
                    "member_prompt": prompt,
                    "history_post_ids": history[:end],
                    "target_post_id": target.post_id,
                    "negative_post_ids": list(target.negative_post_ids),
                }
            )
    popularity = _train_popularity(sequences)
    tables = {
        "examples": pa.Table.from_pylist(
            sorted(examples, key=lambda r: int(r["ts_ms"])), schema=EXAMPLES_SCHEMA
        ),
        "posts": pa.Table.from_pylist(
            [
                {
                    **p._asdict(),
                    "post_prompt": post_prompts[p.post_id],
                    "popularity": popularity[p.post_id],
                }
                for p in posts
            ],
            schema=POSTS_SCHEMA,
        ),
        "seen": pa.Table.from_pylist([], schema=SEEN_SCHEMA),
        "positives": _first_positives(positives),
        "eval": pa.Table.from_pylist(
            [
                {
                    "member_id": row["member_id"],
                    "member_prompt": row["member_prompt"],
                    "relevant_post_ids": [row["target_post_id"]],
                    "seen_before_split": row["history_post_ids"],
                }
                for row in heldout
                if row["stage"] == "test"
            ],
            schema=EVAL_SCHEMA,
        ),
        "heldout": pa.Table.from_pylist(heldout, schema=HELDOUT_SCHEMA),
    }
    counts = {name: table.num_rows for name, table in tables.items()}
    counts |= {"members": len(sequences)} | {key: skipped[key] for key in sorted(skipped)}
    manifest = TrainingManifest(
        split="leave_one_out",
        split_ms=last_train_ts + 1,
        holdout_fraction=0.0,
        source=spec.source,
        history="positive",
        numbers=spec.numbers,
        max_hard_negatives=0,
        prompt_versions=spec.prompt_versions,
        counts=counts,
    )
    return TrainingSet(**tables, manifest=manifest)


def _targets(
    member: str, steps: list[Step], given: Mapping[tuple[str, Stage], Target] | None
) -> tuple[Target, Target]:
    derived = (Target(steps[-2].post_id), Target(steps[-1].post_id))
    if given is None:
        return derived
    valid, test = given.get((member, "valid")), given.get((member, "test"))
    if valid is None or test is None:
        raise TrainingSetError(f"member {member!r}: the source's split has no valid/test row")
    if (valid.post_id, test.post_id) != (derived[0].post_id, derived[1].post_id):
        raise TrainingSetError(
            f"member {member!r}: the source's valid/test targets {valid.post_id}/{test.post_id}"
            f" are not the last two interactions {derived[0].post_id}/{derived[1].post_id}"
        )
    return valid, test


def _example(
    member: str, step: Step, prompt: str, post_prompts: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "member_id": member,
        "ts_ms": step.ts_ms,
        "member_prompt": prompt,
        "post_id": step.post_id,
        "post_prompt": post_prompts[step.post_id],
        "hard_negative_ids": [],
        "hard_negative_prompts": [],
    }


def _train_popularity(sequences: Mapping[str, Sequence[Step]]) -> Counter[str]:
    """Positive interactions per post, before each member's validation target."""
    counts: Counter[str] = Counter()
    for steps in sequences.values():
        for step in steps[:-2] if len(steps) >= 3 else steps:
            counts[step.post_id] += 1
    return counts


def _first_positives(rows: list[tuple[str, str, int]]) -> pa.Table:
    first: dict[tuple[str, str], int] = {}
    for member, post, ts in rows:
        first.setdefault((member, post), ts)
    return pa.Table.from_pylist(
        [{"member_id": m, "post_id": p, "first_ts_ms": t} for (m, p), t in first.items()],
        schema=POSITIVES_SCHEMA,
    )
