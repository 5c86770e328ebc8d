"""The service's ranker: a loaded GR checkpoint (or the reason there is none) scoring posts
for a member from the index's vectors and the member's engagement history."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from index_store import IndexStore, PostRecord
from models.errors import ModelLoadError
from models.gr.checkpoint import GRCheckpoint, load_checkpoint
from models.gr.features import PostAttrs
from models.gr.scoring import combined_score, request_inputs, score
from processors.engagement_history import MemberHistories
from service.ranker_settings import RankerSettings

log = logging.getLogger(__name__)


class Ranked(NamedTuple):
    """Scores of the known candidates, in request order."""

    post_ids: list[str]
    probs: np.ndarray
    """(K, N) task probabilities."""
    combined: np.ndarray
    """(K,) weighted sum of the task probabilities."""
    unknown_post_ids: list[str]
    history_steps: int


class Ranker:
    """Scores candidates with the GR; ``checkpoint`` is None when no ranker is configured or it
    could not be used, and ``unavailable_reason`` says why."""

    def __init__(
        self,
        settings: RankerSettings,
        store: IndexStore,
        histories: MemberHistories,
        checkpoint: GRCheckpoint | None,
        unavailable_reason: str | None,
    ) -> None:
        self.settings, self.store, self.histories = settings, store, histories
        self.checkpoint, self.unavailable_reason = checkpoint, unavailable_reason
        self._lock = threading.Lock()  # one forward pass at a time: they would share the cores

    @classmethod
    def load(
        cls, settings: RankerSettings, store: IndexStore, histories: MemberHistories
    ) -> Ranker:
        """Load the configured checkpoint; a missing or mismatched one leaves the ranker
        unavailable (feeds fall back to retrieval order) instead of failing the service."""
        if settings.checkpoint is None:
            return cls(settings, store, histories, None, "no GR checkpoint configured")
        try:
            checkpoint = load_checkpoint(settings.checkpoint, settings.device)
        except ModelLoadError as error:
            log.error("GR ranker unavailable: %s", error)
            return cls(settings, store, histories, None, str(error))
        if checkpoint.embedding_model_version != store.model_version:
            reason = (
                f"GR checkpoint {checkpoint.model_version} was trained on embeddings of "
                f"{checkpoint.embedding_model_version}, the index holds {store.model_version}; "
                "retrain it (`feedline train gr`)"
            )
            log.error("GR ranker unavailable: %s", reason)
            return cls(settings, store, histories, None, reason)
        log.info("GR ranker %s loaded from %s", checkpoint.model_version, settings.checkpoint)
        return cls(settings, store, histories, checkpoint, None)

    @property
    def version(self) -> str | None:
        """The loaded checkpoint's model version."""
        return None if self.checkpoint is None else self.checkpoint.model_version

    def rank(
        self,
        member_id: str,
        post_ids: Sequence[str],
        task_weights: Mapping[str, float] | None = None,
        device: str | None = None,
    ) -> Ranked:
        """Score ``post_ids`` for the member. Posts not in the index are left out and listed
        in ``unknown_post_ids``. Requires a loaded checkpoint."""
        if self.checkpoint is None:
            raise RuntimeError("Ranker.rank needs a checkpoint; check `checkpoint` first")
        config = self.checkpoint.model.config
        history = self.histories.get(member_id)[-config.max_history :]
        vectors, records = self.store.post_vectors([*(e.post_id for e in history), *post_ids])
        known = [i for i, r in enumerate(records[len(history) :]) if r is not None]
        unknown = [p for p, r in zip(post_ids, records[len(history) :], strict=True) if r is None]
        ids = [post_ids[i] for i in known]
        weights = config.task_weights if task_weights is None else task_weights
        if not ids:
            empty = np.zeros((0, len(config.tasks)), np.float32)
            return Ranked([], empty, np.zeros(0, np.float32), unknown, len(history))
        member = self.store.member(member_id)
        if device is None and history:
            device = history[-1].device
        inputs = request_inputs(
            history,
            vectors[: len(history)],
            _attrs(records[: len(history)]),
            vectors[len(history) :][known],
            _attrs([records[len(history) + i] for i in known]),
            None if member is None else member.vector,
            now_ms=int(time.time() * 1000),
            device=device,
            config=config,
        )
        with self._lock:
            probs = score(self.checkpoint.model, inputs, self.settings.attention)
        return Ranked(
            ids, probs, combined_score(probs, config.tasks, weights), unknown, len(history)
        )


def _attrs(records: Sequence[PostRecord | None]) -> PostAttrs:
    return PostAttrs(
        authors=[_text(r, "author_id") for r in records],
        formats=[_text(r, "format") for r in records],
    )


def _text(record: PostRecord | None, key: str) -> str | None:
    value = None if record is None else record.attrs.get(key)
    return value if isinstance(value, str) else None
