"""A real Prometheus server (Debian's package, via scripts/promtool.sh) scrapes the running
pipeline and the lag exporter on loopback, with the repo's alert rules loaded: lag and
freshness series are queryable, and stopping the embedding worker makes the consumer-lag
alert go pending."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from index_store import IndexSettings
from service.client import QueryClient
from streams.lag_exporter import LagExporter, LagExporterSettings, pipeline_groups
from streams.local_broker import free_port
from streams.settings import KafkaSettings
from tests.integration.conftest import Pipeline
from tests.integration.events import post
from tests.integration.kafka_tools import wait_until
from tests.integration.pipeline_tools import publish, wait_visible
from tests.support.promtool import find_promtool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "monitoring" / "alerts" / "feedline.rules.yaml"
LAG_THRESHOLD = "sum by (consumergroup) (kafka_consumergroup_lag) > 10000"
TEST_THRESHOLD = "sum by (consumergroup) (kafka_consumergroup_lag) > 5"


@pytest.fixture(scope="module")
def kafka(kafka_factory: Callable[..., KafkaSettings]) -> KafkaSettings:
    return kafka_factory()


@pytest.fixture(scope="module")
def pipeline(kafka: KafkaSettings, pipeline_factory: Callable[..., Pipeline]) -> Pipeline:
    started = pipeline_factory(kafka)
    with QueryClient(started.url) as client:
        wait_until(client.is_ready, 180, f"the service to be ready\n{started.logs()}")
    return started


@pytest.fixture(scope="module")
def lag_exporter(kafka: KafkaSettings, pipeline: Pipeline) -> Iterator[LagExporter]:
    index = IndexSettings(consumer_group=pipeline.env["FEEDLINE_INDEX_CONSUMER_GROUP"])
    settings = LagExporterSettings(port=0, cache_s=1.0)
    with LagExporter(kafka, settings, pipeline_groups(kafka, index=index)) as exporter:
        yield exporter


@pytest.fixture(scope="module")
def prometheus(
    pipeline: Pipeline, lag_exporter: LagExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base URL of a Prometheus scraping every second, with the repo's rules (the lag alert's
    threshold lowered to 5 messages so a test can reach it)."""
    work = tmp_path_factory.mktemp("prometheus")
    rules = RULES.read_text()
    assert LAG_THRESHOLD in rules, "the lag alert's expression changed: update this test"
    (work / "rules.yaml").write_text(rules.replace(LAG_THRESHOLD, TEST_THRESHOLD))
    lag_target = lag_exporter.url.removeprefix("http://").removesuffix("/metrics")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(work / "rules.yaml")],
        "scrape_configs": [
            _job("feedline-lag", lag_target),
            _job("feedline-serve", f"127.0.0.1:{pipeline.service_port}"),
            _job("feedline-embed", f"127.0.0.1:{pipeline.embed_metrics_port}"),
            _job("feedline-prompts", f"127.0.0.1:{pipeline.prompts_metrics_port}"),
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    binary = Path(find_promtool()).with_name("prometheus")
    with open(work / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), 60, f"prometheus to start: {work / 'prometheus.log'}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _job(name: str, target: str) -> dict[str, Any]:
    return {"job_name": name, "static_configs": [{"targets": [target]}]}


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query."""
    body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_lag_and_freshness_series_are_queryable(
    kafka: KafkaSettings, pipeline: Pipeline, prometheus: str
) -> None:
    with QueryClient(pipeline.url) as client:
        publish(kafka, post("prom-1", "Scraped by a real Prometheus"))
        wait_visible(client, "prom-1")
    embed = kafka.topic("feedline-embed")
    lag = f'kafka_consumergroup_lag{{consumergroup="{embed}"}}'
    wait_until(lambda: bool(query(prometheus, lag)), 60, "embed group lag in prometheus")
    topics = {r["metric"]["topic"] for r in query(prometheus, lag)}
    assert topics == {kafka.topic("prompts.posts"), kafka.topic("prompts.members")}
    fresh = 'feedline_freshness_seconds_count{entity="post"}'
    wait_until(lambda: bool(query(prometheus, fresh)), 60, "freshness in prometheus")
    assert float(query(prometheus, fresh)[0]["value"][1]) >= 1
    stages = query(
        prometheus, 'count by (stage) (feedline_freshness_stage_seconds_count{entity="post"})'
    )
    assert {r["metric"]["stage"] for r in stages} == {
        "event_to_prompt",
        "prompt_to_embedding",
        "embedding_to_visible",
    }
    seconds = f'kafka_consumergroup_lag_seconds{{consumergroup="{embed}"}}'
    wait_until(lambda: bool(query(prometheus, seconds)), 60, "lag seconds in prometheus")


def test_stopping_the_embed_worker_makes_the_lag_alert_go_pending(
    kafka: KafkaSettings, pipeline: Pipeline, prometheus: str
) -> None:
    embed = kafka.topic("feedline-embed")
    worker = pipeline.roles["embed"]
    worker.stop()
    try:
        publish(kafka, *(post(f"stalled-{i}", f"Waiting for an embedder {i}") for i in range(20)))

        def lag_alert() -> bool:
            alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            return any(
                a["labels"]["alertname"] == "FeedlineConsumerLagHigh"
                and a["labels"].get("consumergroup") == embed
                and a["state"] in ("pending", "firing")
                for a in alerts
            )

        wait_until(lag_alert, 90, "FeedlineConsumerLagHigh to go pending for the embed group")
        total = query(prometheus, f'sum(kafka_consumergroup_lag{{consumergroup="{embed}"}})')
        assert float(total[0]["value"][1]) >= 20
    finally:
        worker.start()
