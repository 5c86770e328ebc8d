"""The lag exporter role: consumer-group lag of the pipeline as Prometheus metrics.

Exposed at ``/metrics`` (names from DESIGN.md "Observability names", kafka_exporter's where
dashboards already use them):

- ``kafka_consumergroup_lag{consumergroup,topic,partition}``: records not yet consumed (high
  watermark minus committed offset; never committed: from the earliest offset).
- ``kafka_consumergroup_lag_seconds{consumergroup,topic}``: age of the oldest unconsumed
  record over the topic's partitions (now minus the timestamp of the record at the committed
  offset), 0 when caught up.
- ``kafka_consumergroup_members{consumergroup}``: members of the group now.
- ``feedline_lag_exporter_scrape_errors_total``: broker reads that failed (one per failed
  metadata read or failed group per refresh).
- ``feedline_lag_exporter_broker_up``: 1 when the broker answered the last reading's metadata
  request, 0 when it did not (unreachable, refusing, timing out). Group reads failing while
  this is 1 — the exporter unable to read offsets from a broker that answers — show as
  scrape errors and missing series instead.

Which partitions count for a group: see ``streams.lag.counted_partitions`` (those it committed
offsets on, plus all partitions of its input topics while it has members, once it committed
on them, or from the first reading for a group that ``assigns`` its partitions, the index
feed's). Series are built fresh from each reading, so partitions a group no longer has
offsets on — a deleted group, expired offsets, a deleted topic — disappear.

Broker restarts: a failed read leaves no client behind that the restart could have left stale
(``streams.lag.KafkaOffsetsSource``), and a refused connection fails a reading at once, so
scrapes during an outage answer within Prometheus's scrape timeout with ``broker_up`` 0. The
series are back with the first reading after the group coordinator has loaded its offsets
(it answers ``NOT_COORDINATOR`` for a moment after a restart): about a second after the
broker answers in the integration test and ``bench/lag_recovery.py``, plus up to ``cache_s``
until a scrape reads again.

Caching and errors: one reading is served for ``cache_s`` seconds, however often Prometheus
scrapes. A group whose reading fails is left out of that reading (its series vanish, the
error counter grows) rather than served with its last values: an absent series fires
``absent()`` alerts, a frozen one lies. Lag seconds are computed at scrape time from the
cached record timestamps, so they keep growing between readings.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from index_store.settings import IndexSettings
from streams.lag import (
    GroupLag,
    GroupSpec,
    KafkaOffsetsSource,
    LagReadError,
    OffsetsSource,
    measure_group,
    topic_lag_seconds,
)
from streams.prompt_settings import PromptWorkerSettings
from streams.settings import KafkaSettings
from streams.topics import (
    EMBEDDINGS_MEMBERS,
    EMBEDDINGS_POSTS,
    ENGAGEMENTS,
    ENGAGEMENTS_BY_MEMBER,
    MEMBERS_PROFILE,
    POSTS_CREATED,
    POSTS_DELETED,
    PROMPTS_MEMBERS,
    PROMPTS_POSTS,
)

log = logging.getLogger(__name__)
PROMPT_INPUTS = (POSTS_CREATED, POSTS_DELETED, ENGAGEMENTS, MEMBERS_PROFILE, ENGAGEMENTS_BY_MEMBER)


class LagExporterSettings(BaseSettings):
    """The lag exporter role (env prefix ``FEEDLINE_LAG_``)."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_LAG_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(9103, ge=0, le=65_535, description="/metrics port (0: any free port)")
    cache_s: float = Field(5.0, ge=0, description="seconds one reading of the broker is served")
    timeout_s: float = Field(10.0, gt=0, description="longest wait for one broker request")


class EmbedGroupSettings(BaseSettings):
    """The embedding worker's group id, read from the same variable as ``EmbedWorkerSettings``
    (``FEEDLINE_EMBED_GROUP_ID``) without importing the worker, which loads torch."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_EMBED_", extra="ignore")

    group_id: str = "feedline-embed"


def pipeline_groups(
    kafka: KafkaSettings,
    prompts: PromptWorkerSettings | None = None,
    embed: EmbedGroupSettings | None = None,
    index: IndexSettings | None = None,
) -> list[GroupSpec]:
    """The pipeline's consumer groups with their input topics, named as the roles name them
    (role settings from the environment unless given):

    - prompt processor: the Faust app id with the topic prefix (``feedline-prompts``) over
      the four producer topics and ``engagements.by-member``;
    - embedding workers: ``FEEDLINE_EMBED_GROUP_ID`` with the prefix (``feedline-embed``)
      over ``prompts.posts`` and ``prompts.members``;
    - index feed: ``FEEDLINE_INDEX_CONSUMER_GROUP`` as is, no prefix (``feedline-index``)
      over ``embeddings.posts`` and ``embeddings.members``; it commits only offsets a
      snapshot covers and never joins the group (it assigns partitions: ``assigns=True``),
      so every partition of its inputs counts from the first reading, from the earliest
      offset until its first snapshot commits: an index that never snapshots still shows
      (and alerts on) its lag.
    """
    prompts = prompts or PromptWorkerSettings()
    embed = embed or EmbedGroupSettings()
    index = index or IndexSettings()
    return [
        GroupSpec(kafka.topic(prompts.app_id), tuple(kafka.topic(s.name) for s in PROMPT_INPUTS)),
        GroupSpec(
            kafka.topic(embed.group_id),
            (kafka.topic(PROMPTS_POSTS.name), kafka.topic(PROMPTS_MEMBERS.name)),
        ),
        GroupSpec(
            index.consumer_group,
            (kafka.topic(EMBEDDINGS_POSTS.name), kafka.topic(EMBEDDINGS_MEMBERS.name)),
            assigns=True,
        ),
    ]


class ConsumerLagCollector(Collector):
    """A prometheus_client collector reading consumer lag at most every ``cache_s`` seconds.

    Example::

        registry = CollectorRegistry()
        registry.register(ConsumerLagCollector(KafkaSettings()))
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        groups: Sequence[GroupSpec] | None = None,
        cache_s: float = 5.0,
        *,
        source: OffsetsSource | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.groups = list(groups) if groups is not None else pipeline_groups(kafka)
        self.cache_s = cache_s
        self.source = source or KafkaOffsetsSource(kafka, timeout_s)
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()  # the HTTP server scrapes from one thread per request
        self._readings: list[GroupLag] = []
        self._read_at: float | None = None
        self._errors = 0
        self._broker_up = False

    def read(self) -> list[GroupLag]:
        """The current reading of every group that could be read (cached ``cache_s``)."""
        with self._lock:
            now = self._monotonic()
            if self._read_at is None or now - self._read_at >= self.cache_s:
                self._readings = self._read_all()
                self._read_at = now
            return self._readings

    def collect(self) -> Iterable[Metric]:
        """The metric families of the current reading."""
        readings = self.read()
        now_ms = int(self._clock() * 1000)
        lag, seconds, members, errors, broker_up = self._families()
        for reading in readings:
            group = reading.group
            members.add_metric([group], reading.members)
            for row in reading.rows:
                lag.add_metric([group, row.topic, str(row.partition)], row.lag)
            for topic, age in sorted(topic_lag_seconds(reading.rows, now_ms).items()):
                seconds.add_metric([group, topic], age)
        errors.add_metric([], self._errors)
        broker_up.add_metric([], 1.0 if self._broker_up else 0.0)
        return [lag, seconds, members, errors, broker_up]

    def describe(self) -> Iterable[Metric]:
        """The families without samples (registering must not call the broker)."""
        return self._families()

    def _read_all(self) -> list[GroupLag]:
        try:
            counts = self.source.partition_counts()
        except LagReadError as error:
            self._broker_up = False
            self._failed(error)
            return []
        self._broker_up = True
        readings = []
        for spec in self.groups:
            try:
                readings.append(measure_group(self.source, spec, counts))
            except LagReadError as error:
                self._failed(error)
        return readings

    def _failed(self, error: LagReadError) -> None:
        self._errors += 1
        log.warning("consumer lag not read (its series are dropped): %s", error)

    @staticmethod
    def _families() -> tuple[
        GaugeMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
        CounterMetricFamily,
        GaugeMetricFamily,
    ]:
        return (
            GaugeMetricFamily(
                "kafka_consumergroup_lag",
                "Records not yet consumed by the group: high watermark minus committed offset.",
                labels=["consumergroup", "topic", "partition"],
            ),
            GaugeMetricFamily(
                "kafka_consumergroup_lag_seconds",
                "Age of the group's oldest unconsumed record on the topic (0: caught up).",
                labels=["consumergroup", "topic"],
            ),
            GaugeMetricFamily(
                "kafka_consumergroup_members",
                "Members of the consumer group.",
                labels=["consumergroup"],
            ),
            CounterMetricFamily(
                "feedline_lag_exporter_scrape_errors",
                "Broker reads of the lag exporter that failed (their series were dropped).",
                labels=[],
            ),
            GaugeMetricFamily(
                "feedline_lag_exporter_broker_up",
                "Whether the broker answered the lag exporter's last reading (1) or not (0).",
                labels=[],
            ),
        )


class LagExporter:
    """Serves a ``ConsumerLagCollector`` at ``http://host:port/metrics`` from a thread;
    ``start()``/``stop()`` or ``with``."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: LagExporterSettings,
        groups: Sequence[GroupSpec] | None = None,
    ) -> None:
        self.settings = settings
        self.collector = ConsumerLagCollector(
            kafka, groups, settings.cache_s, timeout_s=settings.timeout_s
        )
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        self._server: Any = None

    @property
    def url(self) -> str:
        """The metrics URL (``start()`` first; the real port when ``port`` was 0)."""
        if self._server is None:
            raise RuntimeError("LagExporter.start() has not been called")
        return f"http://{self.settings.host}:{self._server.server_port}/metrics"

    def start(self) -> None:
        """Start serving."""
        self._server, _ = start_http_server(
            self.settings.port, addr=self.settings.host, registry=self.registry
        )
        groups = ", ".join(g.group for g in self.collector.groups)
        log.info("serving consumer lag of %s at %s", groups, self.url)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LagExporter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_lag_exporter(kafka: KafkaSettings, settings: LagExporterSettings) -> None:
    """Serve the pipeline groups' lag until SIGTERM/SIGINT (call from the main thread)."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    with LagExporter(kafka, settings):
        stopping.wait()
    log.info("lag exporter stopped")
