"""A training set (``schemas.training_set``) as the trainer's per-epoch example sampler.

Every epoch draws fresh negatives for every stored example: ``hard_negatives`` of the
member's shown-not-engaged posts and ``easy_negatives`` random posts the member never saw
(``NegativeSampler`` guarantees neither is ever one of the member's positives). Each example
also carries the prompts of all the member's positives, which catalogue negatives exclude.

Example::

    sampler = example_sampler(read_training_set(Path("train")), hard_negatives=1, easy_negatives=1)
    train_dual_encoder(sampler, settings, out_dir)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.dual.examples import ContrastiveExample, ExampleSampler
from models.dual.negatives import NegativeSampler
from schemas.training_set import TrainingSet


def example_sampler(
    training_set: TrainingSet, *, hard_negatives: int, easy_negatives: int
) -> ExampleSampler:
    """``(epoch, rng) -> examples`` with freshly sampled negatives, in random order."""
    negatives = NegativeSampler(training_set)
    columns = training_set.examples.select(
        ["member_id", "ts_ms", "member_prompt", "post_id", "post_prompt"]
    ).to_pydict()
    engaged = _EngagedPrompts(negatives, training_set)
    rows = list(
        zip(
            columns["member_id"],
            columns["member_prompt"],
            columns["post_id"],
            columns["post_prompt"],
            strict=True,
        )
    )
    latest = previous_positives(columns["member_id"], columns["ts_ms"], columns["post_prompt"])

    def sample(epoch: int, rng: np.random.Generator) -> Sequence[ContrastiveExample]:
        examples = []
        for i in rng.permutation(len(rows)):
            member, query, post, positive = rows[int(i)]
            hard = negatives.hard(int(i), hard_negatives, rng)
            easy = negatives.easy(member, easy_negatives, rng, exclude={post})
            examples.append(
                ContrastiveExample(
                    query=query,
                    positive=positive,
                    hard_negatives=tuple(prompt for _, prompt in hard),
                    easy_negatives=tuple(prompt for _, prompt in easy),
                    engaged=engaged.of(member),
                    latest=latest[int(i)],
                )
            )
        return examples

    return sample


def previous_positives(
    members: Sequence[str], times: Sequence[int], prompts: Sequence[str]
) -> list[str | None]:
    """For each example row, the post prompt of the same member's example just before it in
    time (ties in row order), None for the member's first: the post a +latest query adds."""
    out: list[str | None] = [None] * len(members)
    last: dict[str, str] = {}
    for row in sorted(range(len(members)), key=lambda r: (times[r], r)):
        out[row] = last.get(members[row])
        last[members[row]] = prompts[row]
    return out


class _EngagedPrompts:
    """member → the prompts of every post they engaged with positively (built once each)."""

    def __init__(self, negatives: NegativeSampler, training_set: TrainingSet) -> None:
        posts = training_set.posts
        self._prompt = dict(
            zip(
                posts.column("post_id").to_pylist(),
                posts.column("post_prompt").to_pylist(),
                strict=True,
            )
        )
        self._negatives = negatives
        self._cache: dict[str, frozenset[str]] = {}

    def of(self, member_id: str) -> frozenset[str]:
        found = self._cache.get(member_id)
        if found is None:
            ids = self._negatives.positives(member_id)
            found = frozenset(self._prompt[p] for p in ids if p in self._prompt)
            self._cache[member_id] = found
        return found
