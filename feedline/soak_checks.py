"""What the soak verifies after catching up, against its ground truth.

* the index of every query-service replica, through the query API: live posts missing,
  deleted posts present, posts whose indexed version is not the newest one in
  ``embeddings.posts`` or whose newest prompt is not rendered from the latest revision,
  members with a profile but no vector;
* every compacted topic the pipeline writes, read to its end (``read_committed``): keys whose
  last record is not their newest version (``embeddings.*``: ``version``, a tombstone being
  newer than anything; the prompt processor's ``posts``/``members`` changelogs: the table
  value's ``version``);
* every dead-letter topic: how many records it holds (a valid record dead-lettered is a
  defect).

Example::

    report = check(kafka, ["http://127.0.0.1:8080"], workload.truth, "feedline-prompts")
    report.counts()  # {"lost_posts": 0, "resurrected_posts": 0, ...}
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from feedline.soak_workload import SoakTruth, marker
from schemas import EmbeddingUpdate, decode
from service.client import QueryClient
from streams.kafka_clients import admin_client, confluent_consumer
from streams.settings import KafkaSettings
from streams.topics import DLQ_SUFFIX, EMBEDDINGS_MEMBERS, EMBEDDINGS_POSTS

Records = dict[bytes, list[bytes | None]]
"""Every record value of a topic by key, in offset order (None: a tombstone)."""
NEWEST = 1 << 62
"""The version a tombstone counts as: a delete is newer than any upsert before it."""


@dataclass
class SoakReport:
    """The loss counts of one soak (all must be 0) and the keys behind them."""

    lost_posts: list[str] = field(default_factory=list)
    resurrected_posts: list[str] = field(default_factory=list)
    stale_posts: list[str] = field(default_factory=list)
    missing_members: list[str] = field(default_factory=list)
    not_newest_last: dict[str, list[str]] = field(default_factory=dict)
    dlq_records: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """The numbers the soak's JSON line prints."""
        return {
            "lost_posts": len(self.lost_posts),
            "resurrected_posts": len(self.resurrected_posts),
            "stale_posts": len(self.stale_posts),
            "missing_members": len(self.missing_members),
            "compacted_keys_not_newest_last": sum(map(len, self.not_newest_last.values())),
            "dlq_records": sum(self.dlq_records.values()),
        }

    def examples(self, limit: int = 5) -> dict[str, object]:
        """A few offending keys per count, for the log."""
        out: dict[str, object] = {
            name: values[:limit]
            for name, values in (
                ("lost_posts", self.lost_posts),
                ("resurrected_posts", self.resurrected_posts),
                ("stale_posts", self.stale_posts),
                ("missing_members", self.missing_members),
            )
            if values
        }
        out.update({t: keys[:limit] for t, keys in self.not_newest_last.items() if keys})
        out.update({t: n for t, n in self.dlq_records.items() if n})
        return out


def check(
    kafka: KafkaSettings, service_urls: Sequence[str], truth: SoakTruth, prompts_app: str
) -> SoakReport:
    """Verify the pipeline's end state against ``truth`` (``prompts_app``: the prompt
    processor's app id, prefix included, which names its changelogs); with several replicas
    each is checked, and an offending key is reported as ``key@url``."""
    report = SoakReport()
    posts = read_to_end(kafka, kafka.topic(EMBEDDINGS_POSTS.name))
    members = read_to_end(kafka, kafka.topic(EMBEDDINGS_MEMBERS.name))
    for url in service_urls:
        replica = SoakReport()
        with QueryClient(url, timeout_s=30) as client:
            _check_posts(client, truth, posts, replica)
            replica.missing_members = [
                m for m in sorted(truth.members) if not _has_vector(client, m)
            ]
        suffix = f"@{url}" if len(service_urls) > 1 else ""
        for mine, theirs in (
            (report.lost_posts, replica.lost_posts),
            (report.resurrected_posts, replica.resurrected_posts),
            (report.stale_posts, replica.stale_posts),
            (report.missing_members, replica.missing_members),
        ):
            mine.extend(key + suffix for key in theirs)
    compacted: dict[str, tuple[Records, Callable[[bytes | None], int]]] = {
        EMBEDDINGS_POSTS.name: (posts, update_version),
        EMBEDDINGS_MEMBERS.name: (members, update_version),
    }
    for table in ("posts", "members"):
        changelog = f"{prompts_app}-{table}-changelog"
        compacted[changelog] = (read_to_end(kafka, changelog), table_version)
    for name, (records, version) in compacted.items():
        report.not_newest_last[name] = not_newest_last(records, version)
    report.dlq_records = {
        topic: sum(map(len, read_to_end(kafka, topic).values())) for topic in _dlq_topics(kafka)
    }
    return report


def not_newest_last(records: Records, version: Callable[[bytes | None], int]) -> list[str]:
    """Keys whose last record's version is below the highest version recorded for them.

    >>> not_newest_last({b"a": [b"1", b"3", b"2"], b"b": [b"1", b"2"]}, lambda v: int(v or 0))
    ['a']
    """
    return sorted(
        key.decode(errors="replace")
        for key, values in records.items()
        if version(values[-1]) < max(map(version, values))
    )


def update_version(value: bytes | None) -> int:
    """The version of an ``embeddings.*`` record (a tombstone is the newest)."""
    return NEWEST if value is None else decode(EmbeddingUpdate, value).version


def table_version(value: bytes | None) -> int:
    """The ``version`` of a prompt-processor table value (a deleted key is the newest)."""
    return NEWEST if value is None else int(json.loads(value).get("version", 0))


def read_to_end(kafka: KafkaSettings, topic: str, timeout_s: float = 120.0) -> Records:
    """Every committed record of ``topic`` by key, read from the beginning to its end."""
    consumer = confluent_consumer(
        kafka, f"feedline-soak-{uuid.uuid4().hex}", **{"enable.partition.eof": True}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        pending = set(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        records: Records = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(pending)} not read to the end")
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                    continue
                records.setdefault(message.key() or b"", []).append(message.value())
        return records
    finally:
        consumer.close()


def _check_posts(client: QueryClient, truth: SoakTruth, posts: Records, report: SoakReport) -> None:
    live = truth.live_posts()
    for post_id in sorted(truth.revisions):
        indexed = client.post(post_id)
        if post_id not in live:
            if indexed is not None:
                report.resurrected_posts.append(post_id)
            continue
        if indexed is None:
            report.lost_posts.append(post_id)
            continue
        last = (posts.get(post_id.encode()) or [None])[-1]
        newest = None if last is None else decode(EmbeddingUpdate, last)
        fresh = (
            newest is not None
            and newest.version == indexed.version
            and marker(post_id, live[post_id]) in (newest.text or "")
        )
        if not fresh:
            report.stale_posts.append(post_id)


def _has_vector(client: QueryClient, member_id: str) -> bool:
    try:
        client.feed(member_id, k=1)
    except httpx.HTTPStatusError as error:
        if error.response.status_code == 404:  # the index holds no vector for the member
            return False
        raise
    return True


def _dlq_topics(kafka: KafkaSettings) -> Iterable[str]:
    topics = admin_client(kafka).list_topics(timeout=30).topics
    return sorted(t for t in topics if t.startswith(kafka.topic_prefix) and t.endswith(DLQ_SUFFIX))
