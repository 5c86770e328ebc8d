"""What the query service holds while it runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from index_store import IndexStore
from models.encoder import TextEncoder
from service.metrics import ServiceMetrics
from service.settings import ServiceSettings
from streams.index_feed import IndexFeed


@dataclass(frozen=True)
class ServiceState:
    """The loaded model, the index, the feed that fills it, and the metrics."""

    settings: ServiceSettings
    encoder: TextEncoder
    feed: IndexFeed
    metrics: ServiceMetrics
    feed_task: asyncio.Task[None]

    @property
    def store(self) -> IndexStore:
        """The index the feed fills."""
        return self.feed.store

    @property
    def feed_alive(self) -> bool:
        """False once the task applying updates has ended (it only ends by failing)."""
        return not self.feed_task.done()

    @property
    def ready(self) -> bool:
        """True once the index caught up with its input topics."""
        return self.feed.ready.is_set()
