"""Consumer-group lag: end offset minus committed offset, per partition.

Example::

    consumer_group_lag(KafkaSettings(), "feedline-embed", ["prompts.posts"])
    # {("prompts.posts", 0): 0, ("prompts.posts", 1): 3, ...}
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.settings import KafkaSettings

NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group committed nothing yet


def consumer_group_lag(
    kafka: KafkaSettings, group: str, topics: Iterable[str], timeout_s: float = 10.0
) -> dict[tuple[str, int], int]:
    """Messages not yet committed by ``group`` on each partition of ``topics`` (cluster names).

    A partition the group never committed counts from its earliest offset.
    """
    admin = AdminClient(kafka.confluent_config())
    metadata = admin.list_topics(timeout=timeout_s).topics
    partitions = [TopicPartition(t, p) for t in topics for p in sorted(metadata[t].partitions)]
    ends = _offsets(admin, partitions, OffsetSpec.latest(), timeout_s)
    starts = _offsets(admin, partitions, OffsetSpec.earliest(), timeout_s)
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    future = admin.list_consumer_group_offsets(request, request_timeout=timeout_s)[group]
    committed = {(tp.topic, tp.partition): tp.offset for tp in future.result().topic_partitions}
    lag = {}
    for key, end in ends.items():
        offset = committed.get(key, NO_OFFSET)
        lag[key] = max(0, end - (starts[key] if offset < 0 else offset))
    return lag


def _offsets(
    admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec, timeout_s: float
) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=timeout_s)
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
