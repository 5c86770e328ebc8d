"""The GR fallback for logs without impressions: seeded sampled-negative histories that are
the same at training and scoring time, the validation step held out, and a blend that
re-orders only the retrieval's top N."""

from __future__ import annotations

import numpy as np

from feedline import loo_eval, loo_gr
from feedline.loo_eval import Catalog, HeldOut
from models.gr.config import GRConfig
from models.gr.model import GenerativeRecommender

N_ITEMS, DIM = 30, 16


def catalog() -> Catalog:
    ids = [f"p{i}" for i in range(N_ITEMS)]
    return Catalog(
        ids, [f"post {i}" for i in ids], np.zeros(N_ITEMS), {p: i for i, p in enumerate(ids)}
    )


def heldout() -> HeldOut:
    return HeldOut(
        member_ids=["m1", "m2"],
        prompts=["a", "b"],
        histories=[np.array([0, 1, 2]), np.array([5, 6])],
        targets=np.array([3, 7]),
        negatives=[np.array([], np.int64)] * 2,
    )


def test_sampled_histories_are_seeded_and_never_hold_a_positive_as_negative() -> None:
    log = loo_gr.SyntheticLog(catalog(), negatives=5, seed=3)
    first = log.events("m1", [0, 1, 2], valid_last=True)
    assert first == loo_gr.SyntheticLog(catalog(), 5, 3).events("m1", [0, 1, 2], True)
    assert first != loo_gr.SyntheticLog(catalog(), 5, 4).events("m1", [0, 1, 2], True)
    likes = [e.post_id for e in first if e.action == "like"]
    assert likes == ["p0", "p1", "p2"]
    shown_only = {e.post_id for e in first if e.action == "impression"} - set(likes)
    assert shown_only and not shown_only & {"p0", "p1", "p2"}
    assert first[-1].ts_ms == loo_gr.VALID_MS and first[0].ts_ms < loo_gr.VALID_MS


def test_every_step_comes_a_day_after_the_history_item_before_it() -> None:
    log = loo_gr.SyntheticLog(catalog(), negatives=2, seed=0)
    day = loo_gr.DAY_MS

    def like_times(items: list[int], valid_last: bool) -> list[int]:
        return [e.ts_ms for e in log.events("m1", items, valid_last) if e.action == "like"]

    training = like_times([0, 1, 2, 3], valid_last=True)  # 3 is the held-out validation step
    assert training == [loo_gr.VALID_MS - k * day for k in (3, 2, 1, 0)]
    valid_history = like_times([0, 1, 2], valid_last=False)  # candidates come at VALID_MS
    assert valid_history[-1] == loo_gr.VALID_MS - day
    test_history = like_times([0, 1, 2, 3], valid_last=True)  # candidates come at TEST_MS
    assert loo_gr.TEST_MS - test_history[-1] == day == training[-1] - training[-2]


def test_near_negatives_are_the_previous_positives_neighbours() -> None:
    neighbours = np.array([[r + 10, r + 20] for r in range(N_ITEMS // 3)] * 3)  # (30, 2)
    log = loo_gr.SyntheticLog(catalog(), negatives=2, seed=0, neighbours=neighbours)
    events = log.events("m1", [0, 1, 2], valid_last=False)
    for position, near_of in enumerate([0, 0, 1]):  # the first positive: its own neighbours
        shown = {
            e.post_id
            for e in events
            if e.ts_ms == loo_gr.VALID_MS - (3 - position) * loo_gr.DAY_MS
            and e.action == "impression"
        }
        assert shown & {f"p{r}" for r in neighbours[near_of]}, position


def test_the_validation_step_is_held_out_of_training() -> None:
    cat, rng = catalog(), np.random.default_rng(0)
    vectors = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    posts = loo_gr.gr_catalog(cat, vectors, [None] * N_ITEMS)
    config = GRConfig(embedding_dim=DIM, d_model=16, n_heads=2, n_layers=1, max_history=64)
    log = loo_gr.SyntheticLog(cat, negatives=2, seed=0)
    dataset = loo_gr.training_dataset(heldout(), log, posts, config, "enc-v1")
    train, held = dataset.impressions()
    assert held >= 2 and train > held  # each member's last step (its target) is held out
    late = [s.post_rows[s.is_impression & (s.ts_ms >= dataset.split_ms)] for s in dataset.sequences]
    assert 3 in late[0] and 7 in late[1]


def test_reranking_reorders_only_the_top_n() -> None:
    cat, rng = catalog(), np.random.default_rng(1)
    vectors = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    posts = loo_gr.gr_catalog(cat, vectors, [None] * N_ITEMS)
    config = GRConfig(embedding_dim=DIM, d_model=16, n_heads=2, n_layers=1, max_history=64)
    model = GenerativeRecommender(config)
    reranker = loo_gr.Reranker(model, loo_gr.SyntheticLog(cat, 2, 0), posts, "test")
    held = heldout()
    base_scores = rng.normal(size=(2, N_ITEMS))

    def retrieval(rows: np.ndarray) -> np.ndarray:
        return base_scores[rows]

    top = 5
    scorer = loo_eval.reranked_scorer(
        retrieval, loo_gr.rerank_fn(held, retrieval, reranker, alpha=0.0), top
    )
    scores = scorer(np.array([0, 1]))
    for row in range(2):
        retrieved = set(np.argsort(-base_scores[row])[:top].tolist())
        assert set(np.argsort(-scores[row])[:top].tolist()) == retrieved
        rest = np.argsort(-scores[row])[top:]
        assert rest.tolist() == [i for i in np.argsort(-base_scores[row]) if i not in retrieved]
    keep = loo_eval.reranked_scorer(
        retrieval, loo_gr.rerank_fn(held, retrieval, reranker, alpha=1.0), top
    )(np.array([0, 1]))
    assert (np.argsort(-keep, axis=1) == np.argsort(-base_scores, axis=1)).all()


def test_the_reranker_scores_a_members_candidates_once_across_blends() -> None:
    cat, rng = catalog(), np.random.default_rng(2)
    posts = loo_gr.gr_catalog(
        cat, rng.normal(size=(N_ITEMS, DIM)).astype(np.float32), [None] * N_ITEMS
    )
    config = GRConfig(embedding_dim=DIM, d_model=16, n_heads=2, n_layers=1, max_history=64)
    reranker = loo_gr.Reranker(
        GenerativeRecommender(config), loo_gr.SyntheticLog(cat, 2, 0), posts, "test"
    )
    passes: list[int] = []
    real = reranker._logits

    def counted(heldout: HeldOut, row: int, candidates: np.ndarray) -> np.ndarray:
        passes.append(row)
        return real(heldout, row, candidates)

    reranker._logits = counted  # type: ignore[method-assign]
    held, candidates = heldout(), np.array([4, 8, 9])
    first = reranker.logits(held, 0, candidates)
    again = reranker.logits(held, 0, candidates.copy())
    other = reranker.logits(held, 0, np.array([4, 8, 10]))
    assert passes == [0, 0] and np.array_equal(first, again) and other.shape == (3,)
