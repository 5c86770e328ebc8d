"""The GR on leave-one-out data without impressions: training sequences, and re-ranking.

Logs such as Amazon reviews hold only positives, and the GR learns from impressions with
and without a follow-up. The fallback (documented in the README): at every positive, the
member is taken to have been shown the item and ``negatives`` items they never interacted
with, at the same moment: half of them the nearest items of the member's previous positive
(what a retrieval system driven by the latest engagement shows, and what the re-ranker must
tell apart at serving time), half at random; the positive gets a ``like``, the others
nothing. The same seeded draw builds every member's history at training and at scoring
time, so the ranker sees at serving exactly the kind of history it was trained on.

Times are the positions of the sequence, one day apart (the sources are day-resolution at
best, and the held-out rows carry no time), counted back from the member's newest step: the
validation step at `VALID_MS` and the test candidates at `TEST_MS`, one day later, so one
split time holds every member's validation step out, and every step — in training, at the
validation stage and at the test stage — comes one day after the history item before it.
(Counting forward from a common start instead put the held-out step ~100,000 days after the
history in training and at validation but one day after its newest item at test, a gap the
GR had never seen: the blend chosen on validation then lost on test.)

Re-ranking: the retrieval's top ``N`` per member are scored by the GR (``like``
probability) and ordered by ``alpha * z(retrieval cosine) + (1 - alpha) * z(GR logit)``
within the ``N``; ``alpha`` is chosen on the validation stage and reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from feedline.loo_eval import Catalog, HeldOut
from models.gr.config import GRConfig
from models.gr.dataset import GRDataset
from models.gr.model import GenerativeRecommender
from models.gr.scoring import request_inputs, score
from models.gr.sequences import MemberSequence, PostCatalog, member_sequence
from processors.engagement_history import HistoryEvent

DAY_MS = 86_400_000
VALID_MS = 100_000 * DAY_MS
TEST_MS = VALID_MS + DAY_MS
ALPHAS = (0.0, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 1.0)


class SyntheticLog:
    """Seeded sampled-negative impressions around each member's positives."""

    def __init__(
        self,
        catalog: Catalog,
        negatives: int,
        seed: int,
        known: Mapping[str, set[int]] | None = None,
        neighbours: np.ndarray | None = None,
    ) -> None:
        self.catalog = catalog
        self.negatives = negatives
        self.seed = seed
        self.known = known or {}
        self.neighbours = neighbours
        """(items, k) each item's nearest items: half the negatives come from the previous
        positive's neighbours (the first positive's own), half at random.

        ``known``: member → every item row they interacted with, held-out targets included:
        never drawn as a negative, so no target is ever shown as ignored."""

    def events(self, member_id: str, items: Sequence[int], valid_last: bool) -> list[HistoryEvent]:
        """``items`` (catalog rows, oldest first) as impression/like events, each with its
        sampled negative impressions, one day apart: the last at `VALID_MS` when
        ``valid_last``, else one day before it (the history of a validation-stage request)."""
        rng = np.random.default_rng([self.seed, _stable(member_id)])
        positives = set(items) | self.known.get(member_id, set())
        n_items = len(self.catalog.post_ids)
        events: list[HistoryEvent] = []
        newest_ms = VALID_MS if valid_last else VALID_MS - DAY_MS
        for i, row in enumerate(items):
            ts = newest_ms - (len(items) - 1 - i) * DAY_MS
            drawn = self._draw(rng, items[i - 1] if i else row, n_items)
            for negative in drawn:
                if negative not in positives:
                    events.append(
                        HistoryEvent(self.catalog.post_ids[negative], "impression", ts, None)
                    )
            post = self.catalog.post_ids[row]
            events.append(HistoryEvent(post, "impression", ts, None))
            events.append(HistoryEvent(post, "like", ts, None))
        return events

    def _draw(self, rng: np.random.Generator, near_row: int, n_items: int) -> list[int]:
        near = 0 if self.neighbours is None else self.negatives // 2
        drawn = [int(r) for r in rng.integers(0, n_items, self.negatives - near)]
        if near and self.neighbours is not None:
            drawn += [int(r) for r in rng.choice(self.neighbours[near_row], near, replace=False)]
        return drawn


def nearest_items(vectors: np.ndarray, k: int) -> np.ndarray:
    """(items, k) rows of each item's ``k`` most similar other items by cosine."""
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def known_items(test: HeldOut) -> dict[str, set[int]]:
    """Every member's item rows from the test stage: history, validation and test target."""
    return {
        member: {*test.histories[i].tolist(), int(test.targets[i])}
        for i, member in enumerate(test.member_ids)
    }


def gr_catalog(catalog: Catalog, vectors: np.ndarray, authors: Sequence[str | None]) -> PostCatalog:
    """The GR's view of the items: their vectors (the retrieval model's) and authors."""
    return PostCatalog(
        rows=dict(catalog.rows),
        embeddings=np.ascontiguousarray(vectors, np.float32),
        authors=list(authors),
        formats=[None] * len(catalog.post_ids),
    )


def training_dataset(
    valid: HeldOut, log: SyntheticLog, posts: PostCatalog, config: GRConfig, model_version: str
) -> GRDataset:
    """One sequence per member: the training part and the validation step (held out)."""
    zeros = np.zeros(config.embedding_dim, np.float32)
    sequences: list[MemberSequence] = []
    for i, member in enumerate(valid.member_ids):
        items = [*valid.histories[i].tolist(), int(valid.targets[i])]
        events = log.events(member, items, valid_last=True)
        sequences.append(member_sequence(member, events, posts, zeros, config))
    return GRDataset(sequences, posts, VALID_MS, model_version, "leave-one-out + sampled")


class Reranker:
    """GR scores of a member's retrieval candidates, on the synthetic history."""

    def __init__(
        self, model: GenerativeRecommender, log: SyntheticLog, posts: PostCatalog, stage: str
    ) -> None:
        self.model = model.eval()
        self.log = log
        self.posts = posts
        self.stage = stage
        self._last: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        """member row → (candidates, logits) of its latest request: one blend per alpha scores
        the same candidates again."""

    def logits(self, heldout: HeldOut, row: int, candidates: np.ndarray) -> np.ndarray:
        """(K,) ``like`` logits of ``candidates`` (catalog rows) for member ``row``."""
        cached = self._last.get(row)
        if cached is not None and np.array_equal(cached[0], candidates):
            return cached[1]
        logits = self._logits(heldout, row, candidates)
        self._last[row] = (candidates.copy(), logits)
        return logits

    def _logits(self, heldout: HeldOut, row: int, candidates: np.ndarray) -> np.ndarray:
        member = heldout.member_ids[row]
        history = heldout.histories[row].tolist()
        events = self.log.events(member, history, valid_last=self.stage == "test")
        rows = np.array([self.posts.rows[e.post_id] for e in events], np.int64)
        config = self.model.config
        inputs = request_inputs(
            events,
            self.posts.gather(rows),
            self.posts.attrs(rows),
            self.posts.gather(candidates),
            self.posts.attrs(candidates),
            None,
            now_ms=VALID_MS if self.stage == "valid" else TEST_MS,
            device=None,
            config=config,
        )
        probs = score(self.model, inputs)[:, config.tasks.index("like")]
        p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))


def rerank_fn(
    heldout: HeldOut, retrieval: Callable[[np.ndarray], np.ndarray], reranker: Reranker,
    alpha: float,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:  # fmt: skip
    """``(rows, top_items) -> (C, N)`` blended scores for `feedline.loo_eval.reranked_scorer`."""

    def blend(rows: np.ndarray, top_items: np.ndarray) -> np.ndarray:
        base = np.asarray(retrieval(rows), np.float64)
        out = np.empty(top_items.shape, np.float64)
        for j, row in enumerate(rows):
            cosine = base[j, top_items[j]]
            logits = reranker.logits(heldout, int(row), top_items[j])
            out[j] = alpha * _z(cosine) + (1 - alpha) * _z(logits)
        return out

    return blend


class GRChoice(NamedTuple):
    """The blend chosen on validation."""

    alpha: float
    valid_ndcg_at_10: dict[float, float]


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _stable(text: str) -> int:
    """A process-independent 32-bit hash (Python's ``hash`` of str is salted per process)."""
    value = 2166136261
    for byte in text.encode():
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value
