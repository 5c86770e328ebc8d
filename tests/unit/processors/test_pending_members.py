"""``processors.pending_members.PendingMembers``: the tick's mirror of ``member_pending``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from processors.pending_members import PendingMembers


class CountingTable(dict[str, Any]):
    """A dict that counts full scans."""

    scans = 0

    def items(self) -> Any:
        self.scans += 1
        return super().items()

    def __iter__(self) -> Iterator[str]:
        self.scans += 1
        return super().__iter__()


def test_the_first_due_scans_the_table_then_follows_marks_and_clears() -> None:
    table = CountingTable({"m1": 0, "m2": 1, "m3": 0})
    pending = PendingMembers()
    assert not pending.loaded
    assert pending.due(table, 0) == ["m1", "m3"]
    assert pending.due(table, 1) == ["m2"]
    assert pending.due(table, 2) == []
    assert table.scans == 1
    pending.mark("m4", 2)
    pending.clear("m1")
    pending.mark("m2", 0)  # a member moves with its key's new partition
    assert pending.due(table, 0) == ["m3", "m2"]
    assert pending.due(table, 1) == []
    assert pending.due(table, 2) == ["m4"]
    assert table.scans == 1


def test_marks_before_the_first_scan_are_read_from_the_table() -> None:
    table = CountingTable()
    pending = PendingMembers()
    pending.mark("m1", 0)  # ignored: the scan will find it
    pending.clear("m2")
    table["m1"] = 0
    assert pending.due(table, 0) == ["m1"]


def test_forget_makes_the_next_due_read_the_table_again() -> None:
    table = CountingTable({"m1": 0})
    pending = PendingMembers()
    assert pending.due(table, 0) == ["m1"]
    table["m2"] = 0  # written by another owner of the partition, not through this mirror
    assert pending.due(table, 0) == ["m1"]
    pending.forget()
    assert not pending.loaded
    assert pending.due(table, 0) == ["m1", "m2"]
    assert table.scans == 2


def test_random_marks_and_clears_agree_with_the_table() -> None:
    rng = random.Random(11)
    table: dict[str, int] = {f"m{i}": rng.randrange(4) for i in range(20)}
    pending = PendingMembers()
    pending.due(table, 0)
    for step in range(2_000):
        member = f"m{rng.randrange(40)}"
        if rng.random() < 0.6:
            partition = rng.randrange(4)
            table[member] = partition
            pending.mark(member, partition)
        else:
            table.pop(member, None)
            pending.clear(member)
        if step % 97 == 0:
            pending.forget()
        for partition in range(4):
            expected = sorted(m for m, p in table.items() if p == partition)
            assert sorted(pending.due(table, partition)) == expected
