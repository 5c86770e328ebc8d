"""``feedline eval leave-one-out``: the literature's protocol on a leave-one-out training set,
with the same-run baselines every figure must stand beside.

Methods (each scores every item for every evaluated member):

- ``popularity``: the item's positive interactions in the training part;
- ``last-item``: cosine to the member's last history item (its post prompt, embedded);
- ``centroid``: cosine to the mean of the member's last `CENTROID_ITEMS` history items;
- ``prompts``: cosine between the member prompt and the post prompts: feedline's own
  retrieval, with whatever encoder is given (untrained: the packaged model; fine-tuned: a
  ``feedline train dual-encoder`` directory);
- ``+gr``: the ``prompts`` order with its top ``N`` re-ranked by a GR checkpoint.

Protocols (``models.dual.loo_metrics``): ``full`` ranks all items except the member's
history; ``sampled`` ranks the target against the source's 99 stored negatives. Every line
printed says which, on which stage, how many members and how ties were counted.

Example::

    feedline eval leave-one-out --data .feedline/office/train            # baselines + untrained
    feedline eval leave-one-out --data DIR --model .feedline/dual --stage test
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, NamedTuple

import numpy as np

from index_store.member_query import blend_latest
from models.dual.loo_metrics import metrics_of, sampled_ranks, target_ranks
from models.encoder import TextEncoder
from schemas.training_set import TrainingSet, TrainingSetError

Stage = Literal["valid", "test"]
Ranking = Literal["full", "sampled"]
CENTROID_ITEMS = 20
"""History items the centroid averages (the newest): LRD's and APAO's history length."""
CHUNK = 256
LATEST_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
"""The ``latest_weight`` values a benchmark chooses from on the validation stage."""
ENCODE_CHUNK = 256

Scorer = Callable[[np.ndarray], np.ndarray]
"""Rows of `HeldOut` (C,) → scores (C, items) of those members for every item."""


class HeldOut(NamedTuple):
    """The evaluated members of one stage, as item rows."""

    member_ids: list[str]
    prompts: list[str]
    histories: list[np.ndarray]
    """Item rows of each member's history, oldest first."""
    targets: np.ndarray
    negatives: list[np.ndarray]
    """Item rows of the source's sampled negatives (empty when it has none)."""


class Catalog(NamedTuple):
    """The candidate items: ids, post prompts and training popularity, by row."""

    post_ids: list[str]
    prompts: list[str]
    popularity: np.ndarray
    rows: dict[str, int]


def catalog_of(training_set: TrainingSet) -> Catalog:
    """Every post of the set, in its table's order."""
    posts = training_set.posts.to_pydict()
    ids = posts["post_id"]
    return Catalog(
        ids, posts["post_prompt"], np.asarray(posts["popularity"], np.float64), _rows(ids)
    )


def heldout_of(
    training_set: TrainingSet, catalog: Catalog, stage: Stage, members: int | None, seed: int
) -> HeldOut:
    """The ``stage`` rows, all or ``members`` of them sampled with ``seed`` (sorted by id).

    Raises:
        TrainingSetError: the set is not leave-one-out.
    """
    if training_set.heldout is None:
        raise TrainingSetError(
            "not a leave-one-out training set (no heldout table): build one with "
            "`feedline import <format> …`, or use `feedline eval retrieval` for a time split"
        )
    table = training_set.heldout.to_pydict()
    picked = [i for i, s in enumerate(table["stage"]) if s == stage]
    if members is not None and members < len(picked):
        rng = np.random.default_rng(seed)
        picked = sorted(int(i) for i in rng.choice(picked, members, replace=False))
    rows = catalog.rows
    return HeldOut(
        member_ids=[table["member_id"][i] for i in picked],
        prompts=[table["member_prompt"][i] for i in picked],
        histories=[np.array([rows[p] for p in table["history_post_ids"][i]]) for i in picked],
        targets=np.array([rows[table["target_post_id"][i]] for i in picked], np.int64),
        negatives=[np.array([rows[p] for p in table["negative_post_ids"][i]]) for i in picked],
    )


def encode(encoder: TextEncoder, texts: Sequence[str], what: str) -> np.ndarray:
    """L2-normalised vectors of ``texts``, with a progress bar on stderr."""
    from tqdm import tqdm

    out = np.empty((len(texts), encoder.dim), np.float32)
    with tqdm(total=len(texts), desc=f"embed {what}", unit=" prompts", file=sys.stderr) as bar:
        for lo in range(0, len(texts), ENCODE_CHUNK):
            out[lo : lo + ENCODE_CHUNK] = encoder.encode(texts[lo : lo + ENCODE_CHUNK])
            bar.update(min(ENCODE_CHUNK, len(texts) - lo))
    return out


def popularity_scorer(catalog: Catalog) -> Scorer:
    """Every member gets the same order: most interacted-with items first."""
    return lambda rows: np.broadcast_to(catalog.popularity, (len(rows), len(catalog.post_ids)))


def last_item_scorer(heldout: HeldOut, items: np.ndarray) -> Scorer:
    """Cosine to the member's newest history item."""
    last = np.array([h[-1] for h in heldout.histories])
    return lambda rows: items[last[rows]] @ items.T


def centroid_scorer(heldout: HeldOut, items: np.ndarray) -> Scorer:
    """Cosine to the normalised mean of the newest `CENTROID_ITEMS` history items."""
    centroids = np.stack([items[h[-CENTROID_ITEMS:]].mean(axis=0) for h in heldout.histories])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return lambda rows: centroids[rows] @ items.T


def latest_blended(
    members: np.ndarray, heldout: HeldOut, items: np.ndarray, weight: float
) -> np.ndarray:
    """Member vectors with each member's newest history item added at ``weight``
    (``index_store.member_query.blend_latest``, as the query service serves them); a member
    with no history keeps their vector, as in the service."""
    if weight == 0:
        return members
    latest = np.zeros_like(members)
    for row, history in enumerate(heldout.histories):
        if len(history):
            latest[row] = items[history[-1]]
    return blend_latest(members, latest, weight)


def choose_latest_weight(
    members: np.ndarray, heldout: HeldOut, items: np.ndarray
) -> tuple[float, dict[float, float]]:
    """The ``LATEST_WEIGHTS`` value with the best full-ranking NDCG@10 on ``heldout`` (a
    validation stage), ties to the smaller weight; and every weight's NDCG@10."""
    ndcg: dict[float, float] = {}
    for weight in LATEST_WEIGHTS:
        scorer = vector_scorer(latest_blended(members, heldout, items, weight), items)
        [line] = evaluate_methods(heldout, {f"latest {weight}": scorer}, ["full"])
        ndcg[weight] = float(line.metrics["ndcg_at_10"])
    return max(ndcg, key=lambda w: (ndcg[w], -w)), ndcg


def vector_scorer(members: np.ndarray, items: np.ndarray) -> Scorer:
    """Cosine between member vectors and item vectors (both normalised)."""
    return lambda rows: members[rows] @ items.T


def reranked_scorer(
    retrieval: Scorer, rerank: Callable[[np.ndarray, np.ndarray], np.ndarray], top: int
) -> Scorer:
    """``retrieval``'s top ``top`` items per member in the order of ``rerank(rows, top_items)``
    (C, top) scores, above every other item, which keep their retrieval order."""

    def score(rows: np.ndarray) -> np.ndarray:
        base = np.array(retrieval(rows), np.float64)
        top_items = np.argsort(-base, axis=1, kind="stable")[:, :top]  # (C, top)
        new = rerank(rows, top_items)  # (C, top)
        order = np.argsort(-new, axis=1, kind="stable")
        out = base - (base.max() - base.min() + 1.0) * 2 - float(top)  # below every top item
        positions = np.arange(top, 0, -1, dtype=np.float64)  # top item first
        np.put_along_axis(out, np.take_along_axis(top_items, order, axis=1), positions, axis=1)
        return out

    return score


class MethodResult(NamedTuple):
    """One method under one protocol."""

    method: str
    ranking: Ranking
    metrics: dict[str, float | int]


def evaluate_methods(
    heldout: HeldOut, scorers: dict[str, Scorer], rankings: Iterable[Ranking]
) -> list[MethodResult]:
    """Every scorer under every ranking protocol, on the same members."""
    from tqdm import tqdm

    wanted = list(rankings)
    if "sampled" in wanted and not all(len(n) for n in heldout.negatives):
        wanted.remove("sampled")  # the source has no sampled negatives
    results = []
    n = len(heldout.targets)
    for name, scorer in scorers.items():
        ranks: dict[Ranking, list[np.ndarray]] = {r: [] for r in wanted}
        for lo in tqdm(range(0, n, CHUNK), desc=f"rank {name}", file=sys.stderr):
            rows = np.arange(lo, min(lo + CHUNK, n))
            scores = np.asarray(scorer(rows))
            targets = heldout.targets[rows]
            if "full" in ranks:
                excluded = [heldout.histories[i] for i in rows]
                ranks["full"].append(target_ranks(scores, targets, excluded))
            if "sampled" in ranks:
                negatives = [heldout.negatives[i] for i in rows]
                ranks["sampled"].append(sampled_ranks(scores, targets, negatives))
        for ranking, parts in ranks.items():
            metrics = metrics_of(np.concatenate(parts) if parts else np.array([], np.int64))
            results.append(MethodResult(name, ranking, metrics.as_dict()))
    return results


def protocol(
    ranking: Ranking, stage: Stage, heldout: HeldOut, catalog: Catalog
) -> dict[str, object]:
    """What a result line was measured under, in words and numbers."""
    candidates = (
        f"all {len(catalog.post_ids)} items except the member's history"
        if ranking == "full"
        else f"the target + the source's {len(heldout.negatives[0])} sampled negatives"
    )
    return {
        "split": "leave-one-out (last interaction: test, second-to-last: valid)",
        "stage": stage,
        "ranking": ranking,
        "candidates": candidates,
        "ties": "counted against the target",
        "members": len(heldout.targets),
    }


def _rows(ids: Sequence[str]) -> dict[str, int]:
    return {post_id: i for i, post_id in enumerate(ids)}


class Line(NamedTuple):
    """One printed result: a method, the model behind it, a ranking and its metrics."""

    method: str
    model_version: str | None
    ranking: Ranking
    metrics: dict[str, float | int]


def run_methods(
    heldout: HeldOut,
    catalog: Catalog,
    base: TextEncoder,
    methods: Sequence[str],
    rankings: Sequence[Ranking],
    model: TextEncoder | None = None,
    latest_weight: float = 0.0,
) -> list[Line]:
    """The baselines in ``methods`` with the ``base`` encoder, and ``prompts`` with the base
    (``untrained``) and with ``model`` (``fine-tuned``) when given, on the same members; the
    prompt methods' member vectors with the newest item added at ``latest_weight``
    (``latest_blended``; the method is then named ``…+latest``)."""
    suffix = "+latest" if latest_weight > 0 else ""
    items = encode(base, catalog.prompts, "posts") if set(methods) - {"popularity"} else None
    scorers: dict[str, tuple[Scorer, str | None]] = {}
    if "popularity" in methods:
        scorers["popularity"] = (popularity_scorer(catalog), None)
    if items is not None and "last-item" in methods:
        scorers["last-item"] = (last_item_scorer(heldout, items), base.model_version)
    if items is not None and "centroid" in methods:
        scorers["centroid"] = (centroid_scorer(heldout, items), base.model_version)
    if items is not None and "prompts" in methods:
        members = latest_blended(
            encode(base, heldout.prompts, "members"), heldout, items, latest_weight
        )
        scorers["prompts-untrained" + suffix] = (vector_scorer(members, items), base.model_version)
    if model is not None:
        tuned_items = encode(model, catalog.prompts, "posts")
        tuned_members = latest_blended(
            encode(model, heldout.prompts, "members"), heldout, tuned_items, latest_weight
        )
        tuned = vector_scorer(tuned_members, tuned_items)
        scorers["prompts-fine-tuned" + suffix] = (tuned, model.model_version)
    results = evaluate_methods(heldout, {k: s for k, (s, _) in scorers.items()}, rankings)
    return [Line(r.method, scorers[r.method][1], r.ranking, r.metrics) for r in results]


def parse_stage(value: str) -> Stage:
    """``valid`` or ``test``; raises ValueError otherwise."""
    if value == "valid":
        return "valid"
    if value == "test":
        return "test"
    raise ValueError(f"stage is valid or test, got {value!r}")


def parse_rankings(value: str) -> list[Ranking]:
    """``full``, ``sampled`` or ``both``; raises ValueError otherwise."""
    choices: dict[str, list[Ranking]] = {
        "full": ["full"],
        "sampled": ["sampled"],
        "both": ["full", "sampled"],
    }
    if value not in choices:
        raise ValueError(f"ranking is full, sampled or both, got {value!r}")
    return choices[value]
