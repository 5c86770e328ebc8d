"""What the query service holds while it runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request

from index_store import IndexStore
from models.encoder import TextEncoder
from processors.engagement_history import MemberHistories
from service.errors import not_ready
from service.metrics import ServiceMetrics
from service.ranker import Ranker
from service.settings import ServiceSettings
from streams.history_feed import HistoryFeed
from streams.index_feed import IndexFeed


@dataclass(frozen=True)
class ServiceState:
    """The loaded models, the index and the member histories, the feeds that fill them, and
    the metrics."""

    settings: ServiceSettings
    encoder: TextEncoder
    feed: IndexFeed
    history_feed: HistoryFeed
    ranker: Ranker
    metrics: ServiceMetrics
    tasks: tuple[asyncio.Task[None], ...]

    @property
    def store(self) -> IndexStore:
        """The index the feed fills."""
        return self.feed.store

    @property
    def histories(self) -> MemberHistories:
        """Each member's recent engagements, filled from the engagement stream."""
        return self.history_feed.histories

    @property
    def feed_alive(self) -> bool:
        """False once a task applying updates has ended (they only end by failing)."""
        return not any(task.done() for task in self.tasks)

    @property
    def ready(self) -> bool:
        """True once the index and the histories caught up with their input topics."""
        return self.feed.ready.is_set() and self.history_feed.ready.is_set()


def service_state(request: Request) -> ServiceState:
    """The state the app's lifespan stored."""
    state: ServiceState = request.app.state.service
    return state


def ready_state(request: Request) -> ServiceState:
    """The state, or 503 until the service is ready."""
    state = service_state(request)
    if not state.ready:
        raise not_ready()
    return state
