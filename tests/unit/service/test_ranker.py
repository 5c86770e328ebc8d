"""The service's ranker on a real index store, member histories and GR checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from index_store import IndexStore
from models.gr.checkpoint import save_checkpoint
from models.gr.config import GRConfig
from models.gr.features import PostAttrs
from models.gr.scoring import request_inputs, score
from processors.engagement_history import HistoryEvent, MemberHistories
from schemas import EmbeddingUpdate, Entity
from service.ranker import Ranker
from service.ranker_settings import RankerSettings
from tests.unit.index_store.index_updates import update
from tests.unit.models.gr.gr_fixtures import random_model, unit_rows

DIM, MODEL = 16, "emb-v1"
CONFIG = GRConfig(embedding_dim=DIM, d_model=32, n_heads=4, dropout=0.0, max_history=50)
VECTORS = unit_rows(np.random.default_rng(0), 21, DIM)  # 20 posts, then the member


def _update(entity_id: str, vector: np.ndarray, attrs: dict[str, str]) -> EmbeddingUpdate:
    entity: Entity = "post" if entity_id.startswith("p") else "member"
    return update(entity_id, 1, vector, entity=entity, attrs=attrs, model_version=MODEL)


@pytest.fixture
def store() -> IndexStore:
    store = IndexStore(dim=DIM, model_version=MODEL)
    for i in range(20):
        attrs = {"author_id": f"a{i % 3}", "format": "text" if i % 2 else "video"}
        store.apply("post", f"p{i}", _update(f"p{i}", VECTORS[i], attrs))
    store.apply("member", "m1", _update("m1", VECTORS[20], {}))
    return store


@pytest.fixture
def histories() -> MemberHistories:
    histories = MemberHistories(max_steps=1_000)
    now = int(time.time() * 1000)
    for j in range(60):  # more than max_history: the ranker keeps the newest 50
        histories.add(
            "m1", HistoryEvent(f"p{j % 20}", "impression", now - 60_000 * (60 - j) - 40_000, "web")
        )
    histories.add("m1", HistoryEvent("gone", "like", now - 1_000, "mobile"))  # not indexed
    return histories


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    save_checkpoint(random_model(CONFIG), tmp_path / "gr", embedding_model_version=MODEL)
    return tmp_path / "gr"


def test_rank_scores_known_posts_and_reports_unknown_ones(
    store: IndexStore, histories: MemberHistories, checkpoint: Path
) -> None:
    ranker = Ranker.load(RankerSettings(checkpoint=checkpoint), store, histories)
    assert ranker.version is not None and ranker.version.startswith("gr-")
    ranked = ranker.rank("m1", ["p3", "nope", "p7", "p3x"], task_weights={"like": 1.0})
    assert ranked.post_ids == ["p3", "p7"] and ranked.unknown_post_ids == ["nope", "p3x"]
    assert ranked.history_steps == 50
    assert ranked.probs.shape == (2, len(CONFIG.tasks))
    assert ((ranked.probs > 0) & (ranked.probs < 1)).all()
    like = CONFIG.tasks.index("like")
    np.testing.assert_allclose(ranked.combined, ranked.probs[:, like], rtol=1e-6)


def test_rank_equals_scoring_the_same_request_directly(
    store: IndexStore, histories: MemberHistories, checkpoint: Path
) -> None:
    ranker = Ranker.load(RankerSettings(checkpoint=checkpoint), store, histories)
    candidates = ["p1", "p2", "p5"]
    ranked = ranker.rank("m1", candidates, device="mobile")
    history = histories.get("m1")[-50:]
    hist_vectors = np.stack(
        [
            VECTORS[int(e.post_id[1:])] if e.post_id != "gone" else np.zeros(DIM, np.float32)
            for e in history
        ]
    )
    authors = [f"a{int(e.post_id[1:]) % 3}" if e.post_id != "gone" else None for e in history]
    formats = [
        ("text" if int(e.post_id[1:]) % 2 else "video") if e.post_id != "gone" else None
        for e in history
    ]
    inputs = request_inputs(
        history,
        hist_vectors,
        PostAttrs(authors, formats),
        VECTORS[[1, 2, 5]],
        PostAttrs(["a1", "a2", "a2"], ["text", "video", "text"]),
        VECTORS[20],
        now_ms=int(time.time() * 1000),
        device="mobile",
        config=CONFIG,
    )
    assert ranker.checkpoint is not None
    np.testing.assert_allclose(ranked.probs, score(ranker.checkpoint.model, inputs), atol=1e-6)


def test_a_member_without_history_or_vector_is_ranked(
    store: IndexStore, histories: MemberHistories, checkpoint: Path
) -> None:
    ranker = Ranker.load(RankerSettings(checkpoint=checkpoint), store, histories)
    ranked = ranker.rank("newcomer", ["p1", "p2"])
    assert ranked.history_steps == 0 and ranked.probs.shape == (2, len(CONFIG.tasks))
    nothing = ranker.rank("newcomer", ["unknown"])
    assert nothing.post_ids == [] and nothing.unknown_post_ids == ["unknown"]


def test_without_a_usable_checkpoint_the_ranker_says_why(
    store: IndexStore, histories: MemberHistories, checkpoint: Path, tmp_path: Path
) -> None:
    none = Ranker.load(RankerSettings(), store, histories)
    assert none.checkpoint is None and none.unavailable_reason == "no GR checkpoint configured"
    missing = Ranker.load(RankerSettings(checkpoint=tmp_path / "absent"), store, histories)
    assert missing.checkpoint is None and "feedline train gr" in (missing.unavailable_reason or "")
    other = IndexStore(dim=DIM, model_version="emb-v2")
    mismatch = Ranker.load(RankerSettings(checkpoint=checkpoint), other, histories)
    assert mismatch.checkpoint is None and "emb-v2" in (mismatch.unavailable_reason or "")
    with pytest.raises(RuntimeError, match="checkpoint"):
        none.rank("m1", ["p1"])
