"""``streams.member_bundles``: repartitioned records bundled per partition and split again."""

from __future__ import annotations

import random

import pytest

from schemas import InvalidRecord
from streams.member_bundles import (
    BUNDLE_HEADER,
    BUNDLE_KEY,
    bundle_by_partition,
    is_bundle,
    unbundle,
)
from streams.records import Incoming, Outgoing

TOPIC = "t.engagements.by-member"


def by_hash(partitions: int) -> dict[bytes, int]:
    """A stand-in partitioner that a test can read back."""
    return {f"m{i}".encode(): i % partitions for i in range(100)}


def forwarded(member: int, n: int) -> Outgoing:
    return Outgoing(TOPIC, f"m{member}".encode(), f'{{"n":"{n:03d}","member":{member}}}'.encode())


def consumed(bundle: Outgoing, offset: int = 7) -> Incoming:
    assert bundle.partition is not None
    return Incoming(
        bundle.topic, bundle.partition, offset, bundle.key, bundle.value, bundle.headers or [], 5
    )


def test_records_of_one_partition_become_one_bundle_in_order() -> None:
    partition_of = by_hash(4)
    records = [forwarded(m, n) for n, m in enumerate([0, 4, 1, 0, 8, 5])]
    out = bundle_by_partition(records, TOPIC, partition_of.get)
    assert [(o.partition, o.key) for o in out] == [(0, BUNDLE_KEY), (1, BUNDLE_KEY)]
    assert all(o.headers == [(BUNDLE_HEADER, b"1")] for o in out)
    split = [unbundle(consumed(o)) for o in out]
    assert [[(r.key, r.value) for r in part] for part in split] == [
        [(records[i].key, records[i].value) for i in (0, 1, 3, 4)],
        [(records[i].key, records[i].value) for i in (2, 5)],
    ]
    assert {(r.topic, r.partition, r.offset, r.timestamp_ms) for r in split[1]} == {
        (TOPIC, 1, 7, 5)
    }
    assert all(r.headers == [] and not is_bundle(r) for part in split for r in part)


def test_other_records_pass_unchanged_and_a_lone_record_is_not_bundled() -> None:
    prompt = Outgoing("t.prompts.posts", b"p1", b"{}")
    tick = Outgoing(TOPIC, b"__tick__", b"{}", [("feedline.tick", b"1")], 2)
    lone = forwarded(3, 0)
    out = bundle_by_partition([prompt, lone, tick], TOPIC, by_hash(4).get)
    assert out == [prompt, tick, lone]  # a keyed send lands where the bundle would


def test_unknown_partitions_send_the_records_keyed() -> None:
    records = [forwarded(m, n) for n, m in enumerate([0, 0, 4])]
    assert bundle_by_partition(records, TOPIC, lambda key: None) == records


def test_bundles_stay_under_the_byte_limit_and_keep_every_record() -> None:
    records = [forwarded(0, n) for n in range(50)]
    framed = 8 + len(records[0].key or b"") + len(records[0].value or b"")
    out = bundle_by_partition(records, TOPIC, lambda key: 0, max_bytes=framed * 7 + 3)
    assert [len(unbundle(consumed(o))) for o in out] == [7] * 7 + [1]
    assert all(len(o.value or b"") <= framed * 7 + 3 for o in out)
    assert [r.value for o in out for r in unbundle(consumed(o))] == [r.value for r in records]


def test_random_groups_round_trip() -> None:
    rng = random.Random(3)
    partition_of = by_hash(3)
    records = [
        Outgoing(TOPIC, f"m{rng.randrange(100)}".encode(), rng.randbytes(rng.randrange(0, 300)))
        for _ in range(400)
    ]
    out = bundle_by_partition(records, TOPIC, partition_of.get, max_bytes=2_000)
    for partition in range(3):
        mine = [(r.key, r.value) for r in records if partition_of[r.key or b""] == partition]
        sent = [o for o in out if o.partition == partition or o.partition is None]
        back = [
            (r.key, r.value)
            for o in sent
            for r in (unbundle(consumed(o)) if o.headers else [o])
            if partition_of[r.key or b""] == partition
        ]
        assert back == mine


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (b"\x00\x00", "a length is cut off at byte 0"),
        (b"\x00\x00\x00\x02m1\x00\x00\x00\x09{}", "runs past the end"),
        (b"\x00\x00\x00\x02m1", "a length is cut off at byte 6"),
    ],
)
def test_a_broken_bundle_is_an_invalid_record(value: bytes, detail: str) -> None:
    record = Incoming(TOPIC, 2, 9, BUNDLE_KEY, value, [(BUNDLE_HEADER, b"1")])
    with pytest.raises(InvalidRecord, match=detail) as caught:
        unbundle(record)
    assert caught.value.reason == "malformed_bundle"
    assert f"{TOPIC}[2]@9" in str(caught.value)
