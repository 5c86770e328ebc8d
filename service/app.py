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
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from index_store import IndexSettings
from models.encoder import TextEncoder
from models.settings import EncoderSettings
from service.errors import install_error_handlers
from service.metrics import ServiceMetrics
from service.routes import router
from service.settings import ServiceSettings
from service.state import ServiceState
from streams.index_feed import IndexFeed
from streams.settings import KafkaSettings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def create_app(
    kafka: KafkaSettings,
    settings: ServiceSettings,
    encoder_settings: EncoderSettings,
    index_settings: IndexSettings,
) -> FastAPI:
    """The API app; the model and index are loaded when the app starts (lifespan), and a
    final index snapshot is written when it stops."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        encoder = await asyncio.to_thread(TextEncoder.load, encoder_settings)
        await asyncio.to_thread(ensure_topics, kafka)
        metrics = ServiceMetrics(CollectorRegistry())
        feed = IndexFeed(
            kafka, index_settings, metrics, dim=encoder.dim, model_version=encoder.model_version
        )
        try:
            await feed.start()
        except BaseException:
            await feed.stop(snapshot=False)
            raise
        metrics.bind(feed.store, feed.ready.is_set)
        task = asyncio.create_task(feed.run(), name="index-feed")
        task.add_done_callback(_stop_on_feed_failure)
        app.state.service = ServiceState(settings, encoder, feed, metrics, task)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await feed.stop()

    app = FastAPI(title="feedline query service", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(router)
    return app


def _stop_on_feed_failure(task: asyncio.Task[None]) -> None:
    """A dead feed would serve an index that silently stops changing: stop the process so
    its supervisor restarts it (and ``/healthz`` fails until then)."""
    if task.cancelled() or task.exception() is None:
        return
    log.critical("the index feed failed; stopping the service", exc_info=task.exception())
    os.kill(os.getpid(), signal.SIGTERM)
