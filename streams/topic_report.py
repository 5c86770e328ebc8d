"""``feedline topics describe``: partitions per topic, owners per group, and the warnings.

The rule it checks (README "Scaling out"): partitions are the unit of scale. A consumer group
runs at most one member per partition of its input topics; extra members stay idle. The
topics the prompt processor joins on a key are co-partitioned and must keep equal partition
counts. The query service's index feed reads every partition in every replica (no group), so
replicas scale with requests, not with partitions.

Example::

    report = describe_topics(kafka, pipeline_groups(kafka))
    report.warnings     # [] when every topic exists, counts agree and every group is sound
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from streams.group_owners import GroupOwners, group_owners
from streams.lag import GroupSpec, KafkaOffsetsSource
from streams.settings import KafkaSettings
from streams.topics import CO_PARTITIONED, Cleanup, required_topics


class TopicRow(NamedTuple):
    """One topic of the catalog (or its dead-letter companion) as the cluster has it."""

    name: str
    """Catalog name."""
    cluster_name: str
    partitions: int | None
    """``None``: the topic does not exist."""
    cleanup: Cleanup
    key: str
    co_partitioned_with: tuple[str, ...]
    """Catalog names of the other topics that must keep this topic's partition count."""


class TopicsReport(NamedTuple):
    """Every catalog topic, every pipeline group's owners, and what is wrong."""

    topics: list[TopicRow]
    groups: list[GroupOwners]
    warnings: list[str]


def describe_topics(
    kafka: KafkaSettings, groups: Sequence[GroupSpec], timeout_s: float = 10.0
) -> TopicsReport:
    """Read partition counts and the ``groups``' assignments from the cluster."""
    source = KafkaOffsetsSource(kafka, timeout_s)
    counts = source.partition_counts()
    topics = topic_rows(kafka, counts)
    co_partitioned = [tuple(kafka.topic(s.name) for s in group) for group in CO_PARTITIONED]
    owners = [
        group_owners(
            source, spec, counts, [c for c in co_partitioned if set(c) <= set(spec.topics)]
        )
        for spec in groups
    ]
    warnings = topic_warnings(topics) + [w for g in owners for w in g.warnings]
    return TopicsReport(topics, owners, warnings)


def topic_rows(kafka: KafkaSettings, counts: dict[str, int]) -> list[TopicRow]:
    """The catalog (with dead-letter topics) against the cluster's partition counts."""
    partners = {s.name: group for group in CO_PARTITIONED for s in group}
    return [
        TopicRow(
            spec.name,
            kafka.topic(spec.name),
            counts.get(kafka.topic(spec.name)),
            spec.cleanup,
            spec.key,
            tuple(s.name for s in partners.get(spec.name, ()) if s.name != spec.name),
        )
        for spec in required_topics()
    ]


def topic_warnings(rows: Sequence[TopicRow]) -> list[str]:
    """Missing topics, and co-partitioned topics whose partition counts differ."""
    warnings = []
    missing = [r.name for r in rows if r.partitions is None]
    if missing:
        warnings.append(
            f"{len(missing)} topics missing ({', '.join(missing)}); run `feedline topics create`"
        )
    by_name = {r.name: r for r in rows}
    for group in CO_PARTITIONED:
        found = {s.name: by_name[s.name].partitions for s in group if by_name[s.name].partitions}
        if len(set(found.values())) > 1:
            listed = ", ".join(f"{name}={n}" for name, n in found.items())
            warnings.append(f"co-partitioned topics differ in partitions: {listed}")
    return warnings
