"""What the dual-encoder trainer consumes: one engaged (member, post) pair with its sampled
negatives, and how a batch of them becomes the texts of one InfoNCE step.

The trainer takes either a fixed ``Sequence[ContrastiveExample]`` or a callable
``(epoch, rng) -> Sequence[ContrastiveExample]`` that samples fresh negatives every epoch.

Example::

    example = ContrastiveExample(
        query="member\\nheadline: SRE",
        positive="post | format: text\\ntext: Autoscaling Kubernetes nodes",
        hard_negatives=("post | format: text\\ntext: Our offsite photos",),
        easy_negatives=("post | format: text\\ntext: Sourdough starter tips",),
    )
    batch = build_batch([example], hard_negatives=1, easy_negatives=1, rng=rng)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeAlias

import numpy as np

from models.errors import ModelError


class ContrastiveExample(NamedTuple):
    """One positive engagement and the negatives sampled for it."""

    query: str
    """The member prompt."""
    positive: str
    """The prompt of the post the member engaged with."""
    hard_negatives: tuple[str, ...]
    """Prompts of posts shown to the member and not engaged with (already sampled)."""
    easy_negatives: tuple[str, ...]
    """Prompts of random posts the member never saw (already sampled)."""
    engaged: frozenset[str] = frozenset()
    """Prompts of every post the member engaged with: never a catalogue negative of this
    example (``models.dual.catalogue_negatives``)."""
    latest: str | None = None
    """The prompt of the member's positive just before this one (the post a +latest query
    adds, ``DualTrainSettings.latest_weight``); None for a first positive."""


ExampleSampler: TypeAlias = Callable[[int, np.random.Generator], Sequence[ContrastiveExample]]
"""``(epoch, rng) -> the examples of that epoch``; called once at the start of each epoch."""
ExampleSource: TypeAlias = Sequence[ContrastiveExample] | ExampleSampler


class TrainingDataError(ModelError):
    """The training examples cannot be used (e.g. an epoch has none)."""


class ContrastiveBatch(NamedTuple):
    """The texts of one step. Row ``i`` of ``queries`` has ``docs[i]`` as its positive; every
    other doc is a negative for it unless ``exclude[i, j]`` says it is the same post."""

    queries: list[str]
    """``B`` member prompts."""
    docs: list[str]
    """``B + M`` post prompts: the ``B`` positives first, then ``M`` distinct negatives."""
    exclude: np.ndarray
    """``(B, B + M)`` bool: True where doc ``j`` is a copy of row ``i``'s positive (a false
    negative: two members in the batch engaged with the same post)."""
    engaged: list[frozenset[str]]
    """Row ``i``'s ``ContrastiveExample.engaged``."""
    latest: list[str | None]
    """Row ``i``'s ``ContrastiveExample.latest``."""


def epoch_examples(
    source: ExampleSource, epoch: int, rng: np.random.Generator
) -> Sequence[ContrastiveExample]:
    """The examples of ``epoch``: the sequence itself, or what the sampler returns for it."""
    examples = source(epoch, rng) if callable(source) else source
    if len(examples) == 0:
        raise TrainingDataError(
            f"epoch {epoch} has no training examples; check the engagement log or sampler"
        )
    return examples


def build_batch(
    examples: Sequence[ContrastiveExample],
    hard_negatives: int,
    easy_negatives: int,
    rng: np.random.Generator,
) -> ContrastiveBatch:
    """Assemble one step: positives, then up to ``hard_negatives`` + ``easy_negatives``
    negatives per row (a random subset where an example carries more), deduplicated.

    A negative whose text equals any positive of the batch is dropped: that post is already
    among the docs as a positive, and keeping a second copy would put the row's own positive
    among its negatives.
    """
    positives = [example.positive for example in examples]
    seen = set(positives)
    negatives: list[str] = []
    for example in examples:
        for text in (
            *_subset(example.hard_negatives, hard_negatives, rng),
            *_subset(example.easy_negatives, easy_negatives, rng),
        ):
            if text not in seen:
                seen.add(text)
                negatives.append(text)
    same = np.array(positives, dtype=object)
    exclude = np.zeros((len(examples), len(examples) + len(negatives)), dtype=bool)
    exclude[:, : len(examples)] = same[:, None] == same[None, :]  # (B, B)
    np.fill_diagonal(exclude, False)
    return ContrastiveBatch(
        [example.query for example in examples],
        positives + negatives,
        exclude,
        [example.engaged for example in examples],
        [example.latest for example in examples],
    )


def _subset(texts: tuple[str, ...], k: int, rng: np.random.Generator) -> tuple[str, ...]:
    if len(texts) <= k:
        return texts
    chosen = sorted(rng.choice(len(texts), size=k, replace=False))
    return tuple(texts[i] for i in chosen)
