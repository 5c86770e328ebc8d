"""The consumer-lag exporter and ``feedline lag`` on a real broker: lag follows commits, the
age of the oldest unconsumed record comes from its timestamp, a deleted group's series go, the
index group's series exist from the first scrape, and every series is back within 30 s of a
killed broker answering again (on a private broker, never the session's)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import typer
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

import feedline.lag_cli as lag_cli
from feedline.lag_cli import lag_app
from index_store.settings import IndexSettings
from streams.lag import GroupSpec
from streams.lag_exporter import (
    ConsumerLagCollector,
    LagExporter,
    LagExporterSettings,
    pipeline_groups,
)
from streams.local_broker import LocalKafka
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_POSTS, POSTS_CREATED, PROMPTS_POSTS, ensure_topics
from tests.integration.kafka_tools import metric_value, wait_until

pytestmark = pytest.mark.integration

AGE_MS = 600_000  # records are produced with timestamps ten minutes in the past


def create_topic(kafka: KafkaSettings, name: str, partitions: int) -> str:
    admin = AdminClient(kafka.confluent_config())
    topic = kafka.topic(name)
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    wait_until(lambda: topic in admin.list_topics(timeout=5).topics, 10, f"topic {topic}")
    return topic


def produce(kafka: KafkaSettings, topic: str, partition: int, stamps_ms: list[int]) -> None:
    producer = Producer(kafka.confluent_config())
    for i, ms in enumerate(stamps_ms):
        producer.produce(topic, b"v%d" % i, key=b"k", partition=partition, timestamp=ms)
    assert producer.flush(10) == 0


def commit(kafka: KafkaSettings, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit offsets for ``group`` without joining it (as the index feed does)."""
    consumer = Consumer({**kafka.confluent_config(), "group.id": group})
    try:
        request = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        consumer.commit(offsets=request, asynchronous=False)
    finally:
        consumer.close()


def lag(registry: CollectorRegistry, group: str, topic: str, partition: int) -> float | None:
    labels = {"consumergroup": group, "topic": topic, "partition": str(partition)}
    return registry.get_sample_value("kafka_consumergroup_lag", labels)


def lag_seconds(registry: CollectorRegistry, group: str, topic: str) -> float | None:
    labels = {"consumergroup": group, "topic": topic}
    return registry.get_sample_value("kafka_consumergroup_lag_seconds", labels)


def test_lag_follows_commits_and_a_deleted_groups_series_disappear(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(create=False)
    topic = create_topic(kafka, "lag-probe", partitions=2)
    base_ms = int(time.time() * 1000) - AGE_MS
    produce(kafka, topic, 0, [base_ms + i * 10_000 for i in range(6)])
    produce(kafka, topic, 1, [base_ms + 200_000 + i for i in range(3)])  # younger records
    group, k = kafka.topic("probe-group"), 2
    commit(kafka, group, {(topic, 0): k})
    registry = CollectorRegistry()
    registry.register(ConsumerLagCollector(kafka, [GroupSpec(group, (topic,))], cache_s=0))

    assert lag(registry, group, topic, 0) == 6 - k
    assert lag(registry, group, topic, 1) == 3  # never committed: counted from the earliest
    expected_s = time.time() - (base_ms + k * 10_000) / 1000
    assert lag_seconds(registry, group, topic) == pytest.approx(expected_s, abs=5)
    members = {"consumergroup": group}
    assert registry.get_sample_value("kafka_consumergroup_members", members) == 0

    commit(kafka, group, {(topic, 0): 6, (topic, 1): 3})
    assert [lag(registry, group, topic, p) for p in (0, 1)] == [0, 0]
    assert lag_seconds(registry, group, topic) == 0

    admin = AdminClient(kafka.confluent_config())
    admin.delete_consumer_groups([group], request_timeout=10)[group].result()
    assert [lag(registry, group, topic, p) for p in (0, 1)] == [None, None]
    assert lag_seconds(registry, group, topic) is None
    assert registry.get_sample_value("feedline_lag_exporter_scrape_errors_total") == 0


def test_an_active_group_counts_every_partition_of_its_input_topics(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(create=False)
    topic = create_topic(kafka, "lag-active", partitions=2)
    produce(kafka, topic, 1, [int(time.time() * 1000) - AGE_MS])
    group = kafka.topic("active-group")
    registry = CollectorRegistry()
    registry.register(ConsumerLagCollector(kafka, [GroupSpec(group, (topic,))], cache_s=0))
    assert lag(registry, group, topic, 1) is None  # no members, nothing committed
    member = Consumer({**kafka.confluent_config(), "group.id": group, "enable.auto.commit": False})
    try:
        member.subscribe([topic])
        members = {"consumergroup": group}
        wait_until(
            lambda: (
                member.poll(0.1) is None
                and registry.get_sample_value("kafka_consumergroup_members", members) == 1
            ),
            30,
            "the consumer to join its group",
        )
        assert [lag(registry, group, topic, p) for p in (0, 1)] == [0, 1]
        assert lag_seconds(registry, group, topic) == pytest.approx(AGE_MS / 1000, abs=5)
    finally:
        member.close()


def test_exporter_serves_metrics_over_http(kafka_factory: Callable[..., KafkaSettings]) -> None:
    kafka = kafka_factory(create=False)
    topic = create_topic(kafka, "lag-http", partitions=1)
    produce(kafka, topic, 0, [int(time.time() * 1000)] * 4)
    group = kafka.topic("http-group")
    commit(kafka, group, {(topic, 0): 1})
    settings = LagExporterSettings(port=0, cache_s=5)
    with LagExporter(kafka, settings, [GroupSpec(group, (topic,))]) as exporter:
        labels = {"consumergroup": group, "topic": topic, "partition": "0"}
        assert metric_value(exporter.url, "kafka_consumergroup_lag", labels) == 3


def test_feedline_lag_prints_the_pipeline_groups(
    kafka_factory: Callable[..., KafkaSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = kafka_factory()
    topic = kafka.topic(PROMPTS_POSTS.name)
    produce(kafka, topic, 0, [int(time.time() * 1000) - AGE_MS] * 5)
    embed_group = kafka.topic("feedline-embed")
    commit(kafka, embed_group, {(topic, 0): 2})
    monkeypatch.setenv("FEEDLINE_KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("FEEDLINE_KAFKA_TOPIC_PREFIX", kafka.topic_prefix)
    monkeypatch.setenv("FEEDLINE_INDEX_CONSUMER_GROUP", kafka.topic("index"))
    monkeypatch.delenv("FEEDLINE_EMBED_GROUP_ID", raising=False)
    app = typer.Typer()
    app.add_typer(lag_app, name="lag")  # as the lead registers it on feedline's app

    result = CliRunner().invoke(app, ["lag"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if embed_group in line]
    assert any(topic in r and " 2 " in r and " 3 " in r for r in rows), result.stdout
    assert kafka.topic("feedline-prompts") in result.stdout
    assert kafka.topic("index") in result.stdout

    sleeps: list[float] = []

    def sleep_then_interrupt(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(
        lag_cli, "time", SimpleNamespace(time=time.time, sleep=sleep_then_interrupt)
    )
    result = CliRunner().invoke(app, ["lag", "--watch", "--interval", "0.5"])
    assert result.exit_code == 0, result.output
    assert sleeps == [0.5, 0.5] and embed_group in result.stdout


RECOVERY_S = 30.0  # the bound: series back within 30 s of the broker answering again
Series = dict[tuple[str, str, str], float]  # (group, topic, partition) -> lag


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test alone, which it kills and restarts."""
    broker = LocalKafka(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop(grace_s=10)


def scrape(url: str) -> tuple[Series, float | None]:
    """The lag series and the broker-up gauge of one scrape."""
    series: Series = {}
    broker_up = None
    for family in text_string_to_metric_families(httpx.get(url, timeout=30).text):
        for sample in family.samples:
            if sample.name == "kafka_consumergroup_lag":
                labels = sample.labels
                key = (labels["consumergroup"], labels["topic"], labels["partition"])
                series[key] = sample.value
            elif sample.name == "feedline_lag_exporter_broker_up":
                broker_up = sample.value
    return series, broker_up


def test_every_groups_series_are_back_within_30s_of_a_killed_broker_answering(
    own_broker: LocalKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FEEDLINE_PROMPTS_APP_ID", "FEEDLINE_EMBED_GROUP_ID"):
        monkeypatch.delenv(name, raising=False)
    kafka = KafkaSettings(bootstrap_servers=own_broker.bootstrap_servers, partitions=2)
    ensure_topics(kafka)
    now_ms = int(time.time() * 1000)
    for topic in (POSTS_CREATED.name, PROMPTS_POSTS.name, EMBEDDINGS_POSTS.name):
        produce(kafka, topic, 0, [now_ms] * 3)
    commit(kafka, "feedline-prompts", {(POSTS_CREATED.name, 0): 1})
    commit(kafka, "feedline-embed", {(PROMPTS_POSTS.name, 0): 2})  # the index commits nothing
    groups = pipeline_groups(kafka, index=IndexSettings(consumer_group="feedline-index"))
    settings = LagExporterSettings(port=0, cache_s=1.0, timeout_s=5.0)
    with LagExporter(kafka, settings, groups) as exporter:
        before, broker_up = scrape(exporter.url)  # the exporter's first reading
        assert broker_up == 1
        assert before[("feedline-index", EMBEDDINGS_POSTS.name, "0")] == 3  # from the earliest
        assert {group for group, _, _ in before} == {g.group for g in groups}, before
        assert before[("feedline-prompts", POSTS_CREATED.name, "0")] == 2
        assert before[("feedline-embed", PROMPTS_POSTS.name, "0")] == 1

        own_broker.kill()
        wait_until(lambda: scrape(exporter.url) == ({}, 0.0), 30, "broker_up 0, no series")
        own_broker.start()  # returns once the broker answers a metadata request
        answered = time.monotonic()
        back = wait_until(
            lambda: (reading := scrape(exporter.url))[0] == before and reading, 2 * RECOVERY_S,
            "every series back", interval_s=0.2,
        )  # fmt: skip
        recovery_s = time.monotonic() - answered
        assert back == (before, 1.0)
    logging.getLogger(__name__).info("lag series back %.1f s after the broker", recovery_s)
    assert recovery_s < RECOVERY_S
