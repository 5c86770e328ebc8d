"""``streams.group_owners`` and ``streams.topic_report`` without a broker: assignments decoded
from the consumer protocol's bytes, and a warning for each way a split of partitions goes
wrong (idle members, unread or doubly owned partitions, co-partitioned topics split or of
different sizes)."""

from __future__ import annotations

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from streams.group_owners import decode_assignment, ownership
from streams.lag import DescribedMember, GroupDescription, GroupSpec
from streams.settings import KafkaSettings
from streams.topic_report import topic_rows, topic_warnings

COUNTS = {"a": 2, "b": 2}
SPEC = GroupSpec("g", ("a", "b"))


def assignment(**topics: list[int]) -> bytes:
    """Consumer-protocol assignment bytes, as a member's ``member_assignment``."""
    return ConsumerProtocolMemberAssignment(0, list(topics.items()), b"").encode()


def described(*members: bytes, state: str = "Stable") -> GroupDescription:
    return GroupDescription(
        state,
        "range",
        tuple(
            DescribedMember(f"m{i}", f"c{i}", "/127.0.0.1", raw) for i, raw in enumerate(members)
        ),
    )


def test_assignments_decode_to_partitions_and_empty_bytes_to_none() -> None:
    assert decode_assignment(assignment(a=[0, 1], b=[1])) == [("a", 0), ("a", 1), ("b", 1)]
    assert decode_assignment(b"") == []


def test_a_sound_split_has_one_owner_per_partition_and_no_warning() -> None:
    owners = ownership(SPEC, described(assignment(a=[0], b=[0]), assignment(a=[1], b=[1])), COUNTS)
    assert owners.owners == {
        ("a", 0): ("m0",), ("a", 1): ("m1",), ("b", 0): ("m0",), ("b", 1): ("m1",),
    }  # fmt: skip
    assert owners.warnings == ()
    assert [m.partitions for m in owners.members] == [(("a", 0), ("b", 0)), (("a", 1), ("b", 1))]


def test_partitions_of_other_topics_are_not_counted() -> None:
    """Faust also assigns changelog partitions (standbys): they are not input partitions."""
    active = assignment(a=[0, 1], b=[0, 1], changelog=[0, 1])
    owners = ownership(SPEC, described(active, assignment(changelog=[0])), COUNTS)
    assert owners.members[1].partitions == ()
    assert owners.warnings == ("g has 1 members without partitions",)


def test_more_members_than_partitions_warns_that_some_stay_idle() -> None:
    members = (assignment(a=[0], b=[0]), assignment(a=[1], b=[1]), assignment())
    warnings = ownership(SPEC, described(*members), COUNTS).warnings
    assert warnings == ("g has 3 members for 2 partitions per topic: 1 stay idle; "
                        "raise the partition count or run fewer",)  # fmt: skip


def test_unread_and_doubly_owned_partitions_are_named() -> None:
    warnings = ownership(
        SPEC, described(assignment(a=[0, 1], b=[0]), assignment(a=[1])), COUNTS
    ).warnings
    assert warnings == ("g leaves 1 unread: b[1]", "g assigns 1 twice: a[1]")


def test_a_rebalance_in_progress_is_said_and_not_judged() -> None:
    owners = ownership(SPEC, described(assignment(), state="PreparingRebalance"), COUNTS)
    assert owners.warnings == ("g is PreparingRebalance: a rebalance is under way",)


def test_co_partitioned_topics_split_over_members_warn() -> None:
    members = (assignment(a=[0], b=[1]), assignment(a=[1], b=[0]))
    assert ownership(SPEC, described(*members), COUNTS).warnings == ()
    warnings = ownership(SPEC, described(*members), COUNTS, [("a", "b")]).warnings
    assert warnings == ("g splits partitions [0, 1] of co-partitioned a, b over several "
                        "members: joins on their key would miss",)  # fmt: skip


def test_groups_without_members_or_that_only_assign_have_no_warnings() -> None:
    assert ownership(SPEC, described(), COUNTS).warnings == ()
    assigning = GroupSpec("index", ("a",), assigns=True)
    assert ownership(assigning, described(assignment()), COUNTS).warnings == ()


def test_topic_rows_flag_missing_and_mismatched_co_partitioned_topics() -> None:
    kafka = KafkaSettings(topic_prefix="x.")
    counts = {
        kafka.topic(name): 4 for name in ("posts.created", "posts.deleted", "members.profile")
    }
    counts[kafka.topic("engagements")] = 6
    rows = topic_rows(kafka, counts)
    by_name = {r.name: r for r in rows}
    assert by_name["engagements"].cluster_name == "x.engagements"
    assert by_name["engagements"].co_partitioned_with == ("posts.created", "posts.deleted")
    assert by_name["engagements.dlq"].co_partitioned_with == ()
    assert by_name["embeddings.posts"].partitions is None
    warnings = topic_warnings(rows)
    assert warnings[0].startswith(f"{len(rows) - 4} topics missing (")
    assert warnings[1:] == [
        "co-partitioned topics differ in partitions: posts.created=4, posts.deleted=4, "
        "engagements=6"
    ]
