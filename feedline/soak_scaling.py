"""Scaling steps of the soak: a worker added to or removed from its group, a query-service
replica that joins late, and the checks that say each went right.

- ``settle``: after a prompt or embedding worker joined or left, poll the group until it is
  ``Stable`` with exactly the running workers as members and ``ownership_warnings`` has
  nothing to say (every input partition owned by one member, none idle, co-partitioned
  partitions together); the seconds it took are the rebalance-to-steady-state figure.
- ``late_replica``: the end offsets of the embedding topics just before a replica starts,
  then ``/v1/stats`` polled until it is ready. A replica may say ready only once it applied
  everything that existed when it started, so at that moment its lag cannot exceed what was
  written since; a larger lag is a violation. The seconds to ready and how it started
  (``restored`` from its snapshot, or ``no_snapshot``: replayed) are reported.
- ``replica_mismatches``: the same member's feed asked of every replica after catch-up; a
  member whose answers differ is a mismatch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from service.client import QueryClient
from streams.lag import GroupSpec, KafkaOffsetsSource, LagReadError
from streams.lag_exporter import pipeline_groups
from streams.settings import KafkaSettings
from streams.topic_report import describe_topics
from streams.topics import EMBEDDINGS_MEMBERS, EMBEDDINGS_POSTS

log = logging.getLogger(__name__)

SETTLE_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 300.0
POLL_S = 0.25


@dataclass(frozen=True)
class Settled:
    """How a group ended up after a scaling step."""

    seconds: float | None
    """Seconds to steady state; None when it did not settle within the timeout."""
    members: int
    warnings: tuple[str, ...]
    """What was still wrong at the end (empty when settled)."""


@dataclass(frozen=True)
class LateReady:
    """How a replica that joined late became ready."""

    seconds: float | None
    """Seconds from its start to ``/v1/stats`` saying ready; None on timeout."""
    start: str
    """``restored`` (from its snapshot) or the reason it replayed its topics."""
    lag_at_ready: int
    written_meanwhile: int
    """Records (and markers) added to the embedding topics between its start and its ready."""

    @property
    def violation(self) -> bool:
        """True when it never got ready, or said ready while still behind its start."""
        return self.seconds is None or self.lag_at_ready > self.written_meanwhile


def settle(kafka: KafkaSettings, kind: str, members: int) -> Settled:
    """Wait until the ``kind`` (``prompts`` or ``embed``) group is stable with ``members``
    members and no ownership warning."""
    spec = _group_spec(kafka, kind)
    began = time.monotonic()
    warnings: tuple[str, ...] = ("not read yet",)
    seen = -1
    while time.monotonic() - began < SETTLE_TIMEOUT_S:
        try:
            report = describe_topics(kafka, [spec])
        except LagReadError as error:
            warnings = (str(error),)
        else:
            group = report.groups[0]
            seen = len(group.members)
            warnings = group.warnings
            if group.state == "Stable" and seen == members and not warnings:
                return Settled(round(time.monotonic() - began, 1), seen, ())
        time.sleep(POLL_S)
    log.warning("%s group did not settle with %d members: %s", kind, members, warnings)
    return Settled(None, seen, warnings)


def ownership_warnings(kafka: KafkaSettings) -> list[str]:
    """What ``feedline topics describe`` warns about the worker groups right now."""
    specs = [_group_spec(kafka, kind) for kind in ("prompts", "embed")]
    return describe_topics(kafka, specs).warnings


def _group_spec(kafka: KafkaSettings, kind: str) -> GroupSpec:
    prompts, embed, _index = pipeline_groups(kafka)
    return {"prompts": prompts, "embed": embed}[kind]


def embedding_end_offsets(kafka: KafkaSettings) -> int:
    """The end offsets of both embedding topics, summed over partitions."""
    source = KafkaOffsetsSource(kafka)
    counts = source.partition_counts()
    topics = [kafka.topic(EMBEDDINGS_POSTS.name), kafka.topic(EMBEDDINGS_MEMBERS.name)]
    _earliest, latest = source.watermarks([(t, p) for t in topics for p in range(counts[t])])
    return sum(latest.values())


def late_replica(kafka: KafkaSettings, url: str, start: Callable[[], Any]) -> LateReady:
    """``start()`` a replica serving at ``url`` and watch it become ready."""
    before = embedding_end_offsets(kafka)
    start()
    began = time.monotonic()
    with QueryClient(url, timeout_s=5) as client:
        while time.monotonic() - began < READY_TIMEOUT_S:
            try:
                stats = client.stats()
            except (httpx.HTTPError, ValueError):
                stats = None  # not listening yet, or 503 while it starts
            if stats is not None and stats.ready:
                seconds = round(time.monotonic() - began, 1)
                meanwhile = embedding_end_offsets(kafka) - before
                return LateReady(seconds, stats.start, stats.lag, meanwhile)
            time.sleep(POLL_S)
    return LateReady(None, "timeout", 0, 0)


def replica_mismatches(urls: Sequence[str], members: Sequence[str], k: int = 10) -> list[str]:
    """Members whose feed (post ids in order) differs between the replicas at ``urls``."""
    if len(urls) < 2:
        return []
    clients = [QueryClient(url, timeout_s=30) for url in urls]
    mismatched = []
    try:
        for member in members:
            answers = {tuple(_feed_ids(client, member, k)) for client in clients}
            if len(answers) > 1:
                mismatched.append(member)
    finally:
        for client in clients:
            client.close()
    return mismatched


def _feed_ids(client: QueryClient, member: str, k: int) -> list[str]:
    try:
        return [item.post_id for item in client.feed(member, k=k).items]
    except httpx.HTTPStatusError as error:
        return [f"http {error.response.status_code}"]
