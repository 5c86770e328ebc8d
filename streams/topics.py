"""The topic catalog (DESIGN.md "Topics") and idempotent topic creation.

Every name here is a catalog name; the cluster name is ``KafkaSettings.topic(name)`` (the
configurable prefix). Topics that are joined on the same key must have the same partition
count (co-partitioning); ``ensure_topics`` refuses to run against a cluster where they differ.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.errors import TopicError
from streams.kafka_clients import admin_client
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)

Cleanup = Literal["delete", "compact"]
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its catalog name, what its key is, and how Kafka cleans it up."""

    name: str
    key: str
    cleanup: Cleanup
    dead_letters: bool = True
    """Whether consumers route bad records of this topic to ``<name>.dlq``."""


POSTS_CREATED = TopicSpec("posts.created", "post_id", "delete")
POSTS_DELETED = TopicSpec("posts.deleted", "post_id", "delete")
ENGAGEMENTS = TopicSpec("engagements", "post_id", "delete")
MEMBERS_PROFILE = TopicSpec("members.profile", "member_id", "compact")
ENGAGEMENTS_BY_MEMBER = TopicSpec("engagements.by-member", "member_id", "delete")
"""Repartition topic: engagements enriched with a post summary, re-keyed by member."""
PROMPTS_POSTS = TopicSpec("prompts.posts", "post_id", "delete")
PROMPTS_MEMBERS = TopicSpec("prompts.members", "member_id", "delete")
EMBEDDINGS_POSTS = TopicSpec("embeddings.posts", "post_id", "compact")
EMBEDDINGS_MEMBERS = TopicSpec("embeddings.members", "member_id", "compact")

CATALOG: tuple[TopicSpec, ...] = (
    POSTS_CREATED,
    POSTS_DELETED,
    ENGAGEMENTS,
    MEMBERS_PROFILE,
    ENGAGEMENTS_BY_MEMBER,
    PROMPTS_POSTS,
    PROMPTS_MEMBERS,
    EMBEDDINGS_POSTS,
    EMBEDDINGS_MEMBERS,
)
PRODUCER_TOPICS: tuple[TopicSpec, ...] = (
    POSTS_CREATED,
    POSTS_DELETED,
    ENGAGEMENTS,
    MEMBERS_PROFILE,
)
"""Topics that event producers write (``feedline produce``)."""

CO_PARTITIONED: tuple[tuple[TopicSpec, ...], ...] = (
    (POSTS_CREATED, POSTS_DELETED, ENGAGEMENTS),
    (MEMBERS_PROFILE, ENGAGEMENTS_BY_MEMBER),
)


def dlq_name(topic: str) -> str:
    """The dead-letter topic of a topic (prefixed or not): ``engagements`` → ``engagements.dlq``."""
    return topic + DLQ_SUFFIX


def spec_by_name(name: str) -> TopicSpec:
    """Look a catalog topic up by its catalog name."""
    for spec in CATALOG:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in CATALOG)
    raise TopicError(f"unknown topic {name!r}; the catalog has: {known}")


def required_topics(specs: Iterable[TopicSpec] = CATALOG) -> list[TopicSpec]:
    """The catalog topics plus a ``.dlq`` companion for each that has dead letters."""
    topics = []
    for spec in specs:
        topics.append(spec)
        if spec.dead_letters:
            topics.append(TopicSpec(dlq_name(spec.name), spec.key, "delete", dead_letters=False))
    return topics


def ensure_topics(kafka: KafkaSettings, timeout_s: float = 30.0) -> list[str]:
    """Create every missing topic of the catalog; return the cluster names it created.

    Idempotent: topics that exist are left alone, but a co-partitioned topic with a partition
    count different from its group raises ``TopicError`` (joins would silently miss).
    """
    admin = admin_client(kafka)
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [s for s in required_topics() if kafka.topic(s.name) not in existing]
    created = _create(admin, kafka, missing, timeout_s)
    _check_co_partitioning(admin, kafka, timeout_s)
    return created


def ensure_changelog_topics(
    kafka: KafkaSettings, app_id: str, tables: Iterable[str], timeout_s: float = 30.0
) -> list[str]:
    """Create the compacted changelog topics Faust would create for ``tables`` of app
    ``app_id`` (its cluster name), and wait until the cluster reports their partitions.

    Faust creates missing changelogs itself, but a consumer that fetched metadata while one
    was still being created caches it with 0 partitions for minutes, and the first table write
    then fails its co-partitioning check (``PartitionsMismatch``), killing the agent.
    """
    names = changelog_topics(app_id, tables)
    admin = admin_client(kafka)
    existing = admin.list_topics(timeout=timeout_s).topics
    new_topics = [
        NewTopic(
            name,
            num_partitions=kafka.partitions,
            replication_factor=kafka.replication_factor,
            config={"cleanup.policy": "compact"},
        )
        for name in names
        if name not in existing
    ]
    created = _create_new(admin, new_topics, timeout_s)
    _wait_for_metadata(admin, names, timeout_s)
    return created


def changelog_topics(app_id: str, tables: Iterable[str]) -> list[str]:
    """The changelog topic Faust names for each table of app ``app_id`` (its cluster name)."""
    return [f"{app_id}-{table}-changelog" for table in tables]


def partition_counts(
    kafka: KafkaSettings, topics: Iterable[str], timeout_s: float = 30.0
) -> dict[str, int]:
    """Partitions of each existing topic among ``topics`` (cluster names); absent ones omitted."""
    metadata = admin_client(kafka).list_topics(timeout=timeout_s).topics
    return {t: len(metadata[t].partitions) for t in topics if t in metadata}


def _create(
    admin: AdminClient, kafka: KafkaSettings, specs: list[TopicSpec], timeout_s: float
) -> list[str]:
    if not specs:
        return []
    new_topics = [
        NewTopic(
            kafka.topic(s.name),
            num_partitions=kafka.partitions,
            replication_factor=kafka.replication_factor,
            config={"cleanup.policy": s.cleanup},
        )
        for s in specs
    ]
    return _create_new(admin, new_topics, timeout_s)


def _create_new(admin: AdminClient, new_topics: list[NewTopic], timeout_s: float) -> list[str]:
    if not new_topics:
        return []
    created = []
    for name, future in admin.create_topics(new_topics, request_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicError(f"creating topic {name!r} failed: {error}") from error
    log.info("created %d topics: %s", len(created), ", ".join(sorted(created)))
    return created


def _check_co_partitioning(admin: AdminClient, kafka: KafkaSettings, timeout_s: float) -> None:
    topics = _wait_for_metadata(admin, [kafka.topic(s.name) for s in CATALOG], timeout_s)
    for group in CO_PARTITIONED:
        counts = {kafka.topic(s.name): len(topics[kafka.topic(s.name)].partitions) for s in group}
        if len(set(counts.values())) > 1:
            raise TopicError(
                f"co-partitioned topics have different partition counts {counts}; "
                "give them the same count or joins by key will miss"
            )


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout_s: float) -> dict[str, Any]:
    """Cluster metadata once every topic in ``names`` shows up with its partitions (creation
    propagates asynchronously; a topic being created is listed with none)."""
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=timeout_s).topics
        missing = [n for n in names if n not in topics or not topics[n].partitions]
        if not missing:
            return dict(topics)
        if time.monotonic() > deadline:
            raise TopicError(f"topics still missing from cluster metadata: {missing}")
        time.sleep(0.1)
