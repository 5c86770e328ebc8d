"""The real Kafka broker (one per test session) and factories for isolated test worlds.

Every test gets its own topic prefix, so tests share one broker without seeing each other's
records, consumer groups or Faust changelogs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feedline.processes import RoleGroup, pipeline_roles
from streams.local_broker import LocalKafka, free_port
from streams.settings import KafkaSettings
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A single-node KRaft broker from the project's own script, for the whole session."""
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_factory(kafka_broker: LocalKafka) -> Callable[..., KafkaSettings]:
    """Make ``KafkaSettings`` with a fresh topic prefix and the catalog topics created."""

    def make(partitions: int = 2, create: bool = True) -> KafkaSettings:
        kafka = KafkaSettings(
            bootstrap_servers=kafka_broker.bootstrap_servers,
            topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
            partitions=partitions,
        )
        if create:
            ensure_topics(kafka)
        return kafka

    return make


class Pipeline:
    """The three roles running as processes against one topic prefix."""

    def __init__(
        self, kafka: KafkaSettings, workdir: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.kafka = kafka
        self.service_port = free_port()
        self.prompts_metrics_port = free_port()
        self.embed_metrics_port = free_port()
        self.env = {
            "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "FEEDLINE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "FEEDLINE_KAFKA_PARTITIONS": str(kafka.partitions),
            "FEEDLINE_PROMPTS_DATA_DIR": str(workdir / "prompts"),
            "FEEDLINE_PROMPTS_METRICS_PORT": str(self.prompts_metrics_port),
            "FEEDLINE_EMBED_METRICS_PORT": str(self.embed_metrics_port),
            "FEEDLINE_EMBED_POLL_TIMEOUT_MS": "50",
            "FEEDLINE_INDEX_SNAPSHOT_DIR": str(workdir / "snapshots"),
            "FEEDLINE_INDEX_SNAPSHOT_INTERVAL_S": "2",
            "FEEDLINE_INDEX_CONSUMER_GROUP": f"{kafka.topic_prefix}index",
            **(extra_env or {}),
        }
        self.roles: RoleGroup = pipeline_roles(self.env, workdir / "logs", self.service_port)

    @property
    def url(self) -> str:
        """Base URL of the query service."""
        return f"http://127.0.0.1:{self.service_port}"

    def logs(self) -> str:
        """Every role's log tail, for assertion messages."""
        return "\n".join(f"--- {n} ---\n{r.log_tail()}" for n, r in self.roles.roles.items())


@pytest.fixture(scope="module")
def pipeline_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Pipeline]]:
    """Start the roles for a ``KafkaSettings`` (plus extra env); all are stopped when the
    module ends."""
    started: list[Pipeline] = []

    def start(kafka: KafkaSettings, extra_env: dict[str, str] | None = None) -> Pipeline:
        pipeline = Pipeline(kafka, tmp_path_factory.mktemp("pipeline"), extra_env)
        pipeline.roles.__enter__()
        started.append(pipeline)
        return pipeline

    yield start
    for pipeline in started:
        pipeline.roles.__exit__(None, None, None)
