"""Validation during dual-encoder training: a score on held-out rows that the trainer
maximises (early stopping, best checkpoint kept).

Only training sets with a validation split have one: leave-one-out sets, scored by NDCG@10
under full ranking of the members' second-to-last interaction (``feedline.loo_eval``), on a
seeded sample of members. A time-split set's eval rows are its test, so it gets none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from models.encoder import TextEncoder
from schemas.training_set import TrainingSet


class Validation(NamedTuple):
    """A named score of an encoder; higher is better."""

    name: str
    """What ``score`` measures, e.g. ``valid_ndcg_at_10(full, 500 members)``."""
    score: Callable[[TextEncoder], float]


def validation_for(
    training_set: TrainingSet, members: int, seed: int, latest_weight: float = 0.0
) -> Validation | None:
    """The validation of ``training_set`` on up to ``members`` sampled members, or None; with
    ``latest_weight``, of the +latest query (``feedline.loo_eval.latest_blended``)."""
    from feedline import loo_eval

    if training_set.heldout is None:
        return None
    catalog = loo_eval.catalog_of(training_set)
    heldout = loo_eval.heldout_of(training_set, catalog, "valid", members, seed)
    if not len(heldout.targets):
        return None

    def score(encoder: TextEncoder) -> float:
        items = loo_eval.encode(encoder, catalog.prompts, "posts")
        vectors = loo_eval.encode(encoder, heldout.prompts, "members")
        vectors = loo_eval.latest_blended(vectors, heldout, items, latest_weight)
        scorer = loo_eval.vector_scorer(vectors, items)
        [result] = loo_eval.evaluate_methods(heldout, {"valid": scorer}, ["full"])
        return float(result.metrics["ndcg_at_10"])

    size = len(heldout.targets)
    query = f", +latest {latest_weight}" if latest_weight else ""
    return Validation(f"valid_ndcg_at_10(full ranking, {size} members{query})", score)
