"""Who owns which partition in a consumer group, and what is wrong with the split.

Partitions are the unit of scale: a group spreads the partitions of its input topics over its
members, each partition to exactly one member, so a group with more members than partitions
leaves the extra members idle, and a partition without an owner is not read at all. The prompt
processor also needs co-partitioning: partition ``p`` of every topic it joins on a key goes to
the same member (Faust's assignor does that when their partition counts match;
``ensure_topics`` refuses a cluster where they differ).

The arithmetic (``decode_assignment``, ``ownership``, ``ownership_warnings``) is pure; the
broker read is ``KafkaOffsetsSource.describe_group``.

Example::

    owners = group_owners(KafkaOffsetsSource(kafka), spec, partition_counts)
    owners.warnings        # e.g. ["feedline-embed has 5 members for 4 partitions: ..."]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from streams.lag import GroupDescription, GroupSpec, KafkaOffsetsSource, Partition


class MemberOwnership(NamedTuple):
    """One member and the partitions of the group's input topics it owns."""

    member_id: str
    client_id: str
    host: str
    partitions: tuple[Partition, ...]


class GroupOwners(NamedTuple):
    """A group's members, each partition's owners, and what is wrong (empty: nothing)."""

    group: str
    state: str
    members: tuple[MemberOwnership, ...]
    owners: dict[Partition, tuple[str, ...]]
    """Every partition of the group's input topics → the member ids that own it."""
    warnings: tuple[str, ...]


def decode_assignment(raw: bytes) -> list[Partition]:
    """The partitions in a member's assignment bytes (the consumer protocol's
    ``ConsumerProtocolMemberAssignment``; empty bytes: nothing assigned yet)."""
    if not raw:
        return []
    decoded = ConsumerProtocolMemberAssignment.decode(raw)
    return [(topic, p) for topic, partitions in decoded.assignment for p in partitions]


def ownership(
    spec: GroupSpec,
    described: GroupDescription,
    counts: Mapping[str, int],
    co_partitioned: Iterable[Sequence[str]] = (),
) -> GroupOwners:
    """Who owns each partition of ``spec``'s input topics (``counts``: partitions per topic,
    cluster names), with the warnings of ``ownership_warnings``; ``co_partitioned``: sets of
    input topics whose partition ``p`` must go to one member."""
    inputs = [(t, p) for t in spec.topics for p in range(counts.get(t, 0))]
    wanted = set(inputs)
    members = tuple(
        MemberOwnership(
            m.member_id,
            m.client_id,
            m.host,
            tuple(sorted(tp for tp in decode_assignment(m.assignment) if tp in wanted)),
        )
        for m in described.members
    )
    owners = {tp: tuple(m.member_id for m in members if tp in m.partitions) for tp in inputs}
    warnings = ownership_warnings(
        spec, described.state, members, owners, counts, [tuple(c) for c in co_partitioned]
    )
    return GroupOwners(spec.group, described.state, members, owners, tuple(warnings))


def ownership_warnings(
    spec: GroupSpec,
    state: str,
    members: tuple[MemberOwnership, ...],
    owners: Mapping[Partition, tuple[str, ...]],
    counts: Mapping[str, int],
    co_partitioned: Sequence[tuple[str, ...]] = (),
) -> list[str]:
    """What a stable group should not show: more members than partitions (idle members),
    partitions of nobody or of two members, co-partitioned partitions split over members."""
    if spec.assigns or not members:
        return []  # a group nobody joins (the index feed) owns nothing
    warnings = []
    most = max((counts.get(t, 0) for t in spec.topics), default=0)
    if len(members) > most:
        warnings.append(
            f"{spec.group} has {len(members)} members for {most} partitions per topic: "
            f"{len(members) - most} stay idle; raise the partition count or run fewer"
        )
    if state != "Stable":
        warnings.append(f"{spec.group} is {state}: a rebalance is under way")
        return warnings
    orphans = sorted(f"{t}[{p}]" for (t, p), who in owners.items() if not who)
    if orphans:
        warnings.append(f"{spec.group} leaves {len(orphans)} unread: {', '.join(orphans)}")
    twice = sorted(f"{t}[{p}]" for (t, p), who in owners.items() if len(who) > 1)
    if twice:
        warnings.append(f"{spec.group} assigns {len(twice)} twice: {', '.join(twice)}")
    idle = [m.member_id for m in members if not m.partitions]
    if idle and len(members) <= most:
        warnings.append(f"{spec.group} has {len(idle)} members without partitions")
    for topics in co_partitioned:
        split = sorted(
            p
            for p in range(most)
            if len({owners.get((t, p)) for t in topics if owners.get((t, p))}) > 1
        )
        if split:
            warnings.append(
                f"{spec.group} splits partitions {split} of co-partitioned "
                f"{', '.join(topics)} over several members: joins on their key would miss"
            )
    return warnings


def group_owners(
    source: KafkaOffsetsSource,
    spec: GroupSpec,
    counts: Mapping[str, int],
    co_partitioned: Iterable[Sequence[str]] = (),
) -> GroupOwners:
    """Read ``spec.group`` from the broker and work out its ownership."""
    return ownership(spec, source.describe_group(spec.group), counts, co_partitioned)
