"""Model rollouts in the query service: the controller that runs one rollout at a time and
switches the serving model when it completes (``service.rollout_routes`` serves it over
``POST|GET /v1/admin/rollout``).

The old model serves until the switch. The switch replaces, in this order, the store the
index feed applies to (``IndexFeed.switch``, between two batches) and the serving model
(index, query encoder, GR ranker as one value) that requests read. The GR is re-validated
against the new embeddings: a checkpoint trained on another model is not used, and feeds say
why in ``ranking_note``.

After a rollout, set ``FEEDLINE_ENCODER_MODEL_PATH`` for the next restart and redeploy the
embedding workers with the new model; until then the feed re-embeds their updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from index_store import IndexSettings
from models.encoder import TextEncoder
from models.settings import EncoderSettings
from processors.engagement_history import MemberHistories
from service.api import RolloutEntities, RolloutStatusBody
from service.errors import ApiError
from service.feeds.index_feed import IndexFeed
from service.feeds.rollout import Rollout, Shadow
from service.metrics import ServiceMetrics
from service.ranker import Ranker
from service.serving import ServingModel, ServingSlot
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)


class RolloutController:
    """Runs at most one rollout at a time and swaps the serving model when it completes."""

    def __init__(
        self,
        kafka: KafkaSettings,
        encoder_settings: EncoderSettings,
        index_settings: IndexSettings,
        feed: IndexFeed,
        slot: ServingSlot,
        histories: MemberHistories,
        metrics: ServiceMetrics,
    ) -> None:
        self.kafka = kafka
        self.encoder_settings = encoder_settings
        self.index_settings = index_settings
        self.feed, self.slot, self.histories, self.metrics = feed, slot, histories, metrics
        self._task: asyncio.Task[None] | None = None
        self._rollout: Rollout | None = None
        self._model_path: Path | None = None
        self._load_error: str | None = None
        self._started = self._ended = 0.0

    @property
    def running(self) -> bool:
        """True while a rollout (including its model load) is in progress."""
        return self._task is not None and not self._task.done()

    def start(self, model_path: Path, ranker_checkpoint: Path | None = None) -> None:
        """Begin a rollout to the model in ``model_path`` in the background (on the running
        loop). Raises ``ApiError`` 409 while one runs, 422 for a path that is no model."""
        if self.running:
            raise ApiError(
                409, "conflict", f"a rollout to {self._model_path} is running; wait for it"
            )
        if not (model_path / "config.json").is_file():
            raise ApiError(
                422,
                "validation",
                f"model_path {str(model_path)!r} is not a Hugging Face model directory "
                "(no config.json) on the service's host",
            )
        if ranker_checkpoint is not None and not ranker_checkpoint.is_dir():
            raise ApiError(
                422, "validation", f"ranker_checkpoint {str(ranker_checkpoint)!r} is no directory"
            )
        self._model_path, self._rollout, self._load_error = model_path, None, None
        self._started, self._ended = time.monotonic(), 0.0
        self._task = asyncio.create_task(self._run(model_path, ranker_checkpoint), name="rollout")

    async def stop(self) -> None:
        """Cancel a running rollout (the old model keeps serving)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, model_path: Path, ranker_checkpoint: Path | None) -> None:
        settings = self.encoder_settings.model_copy(update={"model_path": model_path})
        try:
            encoder = await asyncio.to_thread(TextEncoder.load, settings)
            if encoder.model_version == self.slot.current.model_version:
                raise ValueError(f"the index already serves {encoder.model_version}")
        except Exception as error:  # shown in the status: a bad model must not stop serving
            self._load_error = f"cannot roll out {model_path}: {error}"
            self._ended = time.monotonic()
            self.metrics.rollout.outcomes.labels("failed").inc()
            log.error("%s", self._load_error, exc_info=True)
            return
        self._rollout = Rollout(self.kafka, encoder, self.index_settings, self.metrics.rollout)

        async def switch(shadow: Shadow) -> None:
            await self._switch(shadow, encoder, ranker_checkpoint)

        with contextlib.suppress(Exception):  # the rollout logged it and its status shows it
            await self._rollout.run(switch)

    async def _switch(
        self, shadow: Shadow, encoder: TextEncoder, ranker_checkpoint: Path | None
    ) -> None:
        ranker_settings = self.slot.current.ranker.settings
        if ranker_checkpoint is not None:
            ranker_settings = ranker_settings.model_copy(update={"checkpoint": ranker_checkpoint})
        ranker = await asyncio.to_thread(Ranker.load, ranker_settings, shadow.store, self.histories)
        serving = ServingModel(shadow.store, encoder, ranker)
        self.metrics.observe_freshness(shadow.store)
        await self.feed.switch(shadow.store, shadow.positions, reembed=encoder.encode)
        old = self.slot.swap(serving)
        log.info(
            "serving %s instead of %s (ranker: %s)",
            serving.model_version,
            old.model_version,
            ranker.version or ranker.unavailable_reason,
        )

    def status(self) -> RolloutStatusBody:
        """The current or last rollout, and what serves now."""
        serving = self.slot.current
        body = RolloutStatusBody(
            state="idle",
            model_path=None if self._model_path is None else str(self._model_path),
            serving_model_version=serving.model_version,
            ranker_version=serving.ranker.version,
            ranker_note=serving.ranker.unavailable_reason,
        )
        if self._rollout is not None:
            status = self._rollout.status()
            entities = {
                entity: RolloutEntities(
                    target=status.target[entity],
                    embedded=status.embedded[entity],
                    skipped_no_text=status.skipped_no_text[entity],
                )
                for entity in status.target
            }
            return body.model_copy(
                update={
                    "state": status.state,
                    "model_version": status.model_version,
                    "entities": entities,
                    "deleted_posts": status.deleted_posts,
                    "invalid_records": status.invalid,
                    "seconds": status.seconds,
                    "error": status.error,
                }
            )
        if self._model_path is None:
            return body
        seconds = (self._ended or time.monotonic()) - self._started
        state = "failed" if self._load_error is not None else "loading"
        return body.model_copy(
            update={"state": state, "error": self._load_error, "seconds": seconds}
        )
