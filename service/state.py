"""What the query service holds while it runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from processors.engagement_history import MemberHistories
from service.errors import not_ready
from service.feeds.history_feed import HistoryFeed
from service.feeds.index_feed import IndexFeed
from service.metrics import ServiceMetrics
from service.serving import ServingModel, ServingSlot
from service.settings import ServiceSettings

if TYPE_CHECKING:
    from service.rollout_controller import RolloutController


@dataclass(frozen=True)
class ServiceState:
    """The serving model (index, encoder, ranker), the member histories, the feeds that fill
    them, model rollouts, and the metrics."""

    settings: ServiceSettings
    slot: ServingSlot
    feed: IndexFeed
    history_feed: HistoryFeed
    metrics: ServiceMetrics
    tasks: tuple[asyncio.Task[None], ...]
    rollouts: RolloutController | None = None

    @property
    def serving(self) -> ServingModel:
        """What to answer a request with: read it once per request (a rollout may swap it
        at any moment, and one request must not mix two models)."""
        return self.slot.current

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
