"""The query service: FastAPI app whose lifespan loads the model and starts the index feed.

Example::

    uvicorn.run(create_app(KafkaSettings(), ServiceSettings(), EncoderSettings(), IndexSettings()))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from index_store import IndexSettings
from models.encoder import TextEncoder
from models.settings import EncoderSettings
from processors.engagement_history import MemberHistories
from service.errors import install_error_handlers
from service.feeds.history_feed import HistoryFeed
from service.feeds.index_feed import IndexFeed
from service.metrics import ServiceMetrics
from service.openapi import state_limits
from service.rank_routes import router as rank_router
from service.ranker import Ranker
from service.ranker_settings import RankerSettings
from service.rollout_controller import RolloutController
from service.rollout_routes import router as rollout_router
from service.routes import router
from service.serving import ServingModel, ServingSlot
from service.settings import ServiceSettings
from service.state import ServiceState
from streams.broker_wait import when_broker_answers
from streams.settings import KafkaSettings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    kafka: KafkaSettings,
    settings: ServiceSettings,
    encoder_settings: EncoderSettings,
    index_settings: IndexSettings,
    ranker_settings: RankerSettings,
) -> FastAPI:
    """The API app; the models, the index and the member histories are loaded when the app
    starts (lifespan), and a final index snapshot is written when it stops."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every resource is stopped, in reverse order, however the start-up or the service
        # ends: each is pushed on the exit stack as soon as it exists, before it starts.
        async with contextlib.AsyncExitStack() as stack:
            serving = False  # a final index snapshot only after a start-up that completed
            # the model loads while the service waits for the broker and creates topics
            loading = asyncio.create_task(asyncio.to_thread(TextEncoder.load, encoder_settings))
            try:
                await asyncio.to_thread(
                    when_broker_answers, kafka, "query service", lambda: ensure_topics(kafka)
                )
            finally:
                encoder = await loading
            metrics = ServiceMetrics(CollectorRegistry())
            # reembed: updates of another model that carry their prompt are re-embedded, not
            # dead-lettered (after a rollout, or a restart with a new model, until the
            # embedding workers run the model this service serves)
            feed = IndexFeed(
                kafka,
                index_settings,
                metrics,
                dim=encoder.dim,
                model_version=encoder.model_version,
                reembed=encoder.encode,
            )
            stack.push_async_callback(lambda: feed.stop(snapshot=serving))
            await feed.start()
            histories = MemberHistories(ranker_settings.history_steps)
            history_feed = HistoryFeed(kafka, histories)
            stack.push_async_callback(history_feed.stop)
            await history_feed.start()
            ranker = await asyncio.to_thread(Ranker.load, ranker_settings, feed.store, histories)
            slot = ServingSlot(ServingModel(feed.store, encoder, ranker))
            tasks = (
                asyncio.create_task(feed.run(), name="index-feed"),
                asyncio.create_task(history_feed.run(), name="history-feed"),
            )
            stack.push_async_callback(_cancel, tasks)
            rollouts = RolloutController(
                kafka, encoder_settings, index_settings, feed, slot, histories, metrics
            )
            stack.push_async_callback(rollouts.stop)
            state = ServiceState(
                settings, slot, feed, history_feed, metrics, tasks=tasks, rollouts=rollouts
            )
            metrics.bind(lambda: slot.current.store, lambda: state.ready)
            for task in tasks:
                task.add_done_callback(_stop_on_feed_failure)
            app.state.service = state
            serving = True
            yield

    return build_api(lifespan, settings, ranker_settings)


def build_api(
    lifespan: Lifespan | None = None,
    settings: ServiceSettings | None = None,
    ranker_settings: RankerSettings | None = None,
) -> FastAPI:
    """The app's routes and error handlers, its OpenAPI document stating ``settings``' limits
    (defaults: the settings' defaults); ``lifespan`` fills ``app.state.service`` (tests
    without a broker set it themselves)."""
    app = FastAPI(title="feedline query service", version="0.1.0", lifespan=lifespan)
    state_limits(app, settings or ServiceSettings(), ranker_settings or RankerSettings())
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(rank_router)
    app.include_router(rollout_router)
    return app


async def _cancel(tasks: tuple[asyncio.Task[None], ...]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _stop_on_feed_failure(task: asyncio.Task[None]) -> None:
    """A dead feed would serve an index (or histories) that silently stops changing: stop the
    process so its supervisor restarts it (and ``/healthz`` fails until then)."""
    if task.cancelled() or task.exception() is None:
        return
    log.critical("the index feed failed; stopping the service", exc_info=task.exception())
    os.kill(os.getpid(), signal.SIGTERM)
