"""``streams.table_batch``: a batch's table writes held in memory and written once per key."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from streams.prompt_handlers import PromptTables
from streams.table_batch import BatchScope, BatchTable, batch_tables, flush_tables


class RecordingTable(dict[str, Any]):
    """A dict that logs every write and delete that reaches it, as a changelog would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[tuple[str, Any]] = []
        self.reads = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.log.append((key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.log.append((key, None))
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.log.append((key, None))
        return super().pop(key, *default)

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)


def test_reads_see_the_batch_writes_and_the_table_waits_for_flush() -> None:
    table = RecordingTable(a=1, b=2)
    batch = BatchTable(table)
    batch["a"] = 10
    batch["c"] = 3
    del batch["b"]
    assert (batch["a"], batch.get("b"), batch.get("c"), batch.get("z", "none")) == (
        10,
        None,
        3,
        "none",
    )
    assert "b" not in batch and "c" in batch
    assert sorted(batch) == ["a", "c"] and len(batch) == 2
    assert table.log == [] and table == {"a": 1, "b": 2}
    with pytest.raises(KeyError):
        batch["b"]
    with pytest.raises(KeyError):
        del batch["z"]
    assert batch.pending == 3
    assert batch.flush() == 3
    assert table == {"a": 10, "c": 3}
    assert batch.pending == 0


def test_a_hot_key_reaches_the_table_once_with_its_last_value() -> None:
    table = RecordingTable()
    batch = BatchTable(table)
    for count in range(1, 101):
        batch["post-1"] = {"views": count}
        batch["member-1"] = count % 7
    batch.flush()
    assert sorted(table.log, key=str) == [("member-1", 100 % 7), ("post-1", {"views": 100})]


def test_a_key_written_then_deleted_in_one_batch_never_reaches_the_table() -> None:
    table = RecordingTable(kept=1)
    batch = BatchTable(table)
    batch["pending"] = 3
    assert batch.pop("pending", None) == 3
    batch.pop("never-there", None)
    batch["kept"] = 2
    del batch["kept"]
    batch["kept"] = 5  # deleted, then written again: the write wins
    batch.flush()
    assert table.log == [("kept", 5)]


def test_reads_of_the_table_are_kept_until_flush() -> None:
    table = RecordingTable(a=1)
    batch = BatchTable(table)
    for _ in range(5):
        assert batch.get("a") == 1
        assert batch.get("missing") is None
    assert table.reads == 2
    batch.flush()
    table["a"] = 7  # the next batch reads the table again
    assert batch.get("a") == 7


def test_random_operations_end_as_if_applied_to_the_table_directly() -> None:
    rng = random.Random(5)
    for _ in range(200):
        start = {f"k{i}": i for i in range(rng.randrange(4))}
        direct, table = dict(start), RecordingTable(start)
        batch = BatchTable(table)
        for _ in range(rng.randrange(30)):
            key, op = f"k{rng.randrange(5)}", rng.random()
            if op < 0.5:
                value = rng.randrange(100)
                direct[key], batch[key] = value, value
            elif op < 0.8:
                assert batch.pop(key, None) == direct.pop(key, None)
            else:
                assert batch.get(key) == direct.get(key)
            assert dict(batch.items()) == direct
        batch.flush()
        assert table == direct
        assert len(table.log) == len({k for k, _ in table.log})  # each key written once at most


class OnePartitionTable(dict[str, Any]):
    """Like a Faust table in a record's context: iterates every partition's keys, answers
    ``get`` only for the current one (here: keys starting with "0")."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key, default) if key.startswith("0") else default


def test_iterating_uses_the_table_items_not_a_get_per_key() -> None:
    batch = BatchTable(OnePartitionTable({"0-a": 1, "1-b": 2, "1-c": 3}))
    batch["1-d"] = 4
    del batch["0-a"]
    assert dict(batch.items()) == {"1-b": 2, "1-c": 3, "1-d": 4}
    assert sorted(batch.values()) == [2, 3, 4]
    assert sorted(batch) == ["1-b", "1-c", "1-d"]


def test_changes_are_written_in_the_partition_of_the_record_that_made_them() -> None:
    scope = BatchScope()
    landed: list[tuple[int | None, str]] = []
    current: list[int] = []

    class PartitionedTable(dict[str, Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            landed.append((current[-1] if current else None, key))
            super().__setitem__(key, value)

    @contextmanager
    def in_partition(partition: int) -> Iterator[None]:
        current.append(partition)
        yield
        current.pop()

    batch = BatchTable(PartitionedTable(), scope)
    for partition, key in [(2, "a"), (0, "b"), (2, "c"), (2, "a")]:
        scope.partition = partition
        batch[key] = partition
    batch.flush(in_partition)
    assert sorted(landed) == [(0, "b"), (2, "a"), (2, "c")]


def test_batch_tables_front_every_table_and_flush_them_all() -> None:
    tables = PromptTables()
    batch = batch_tables(tables, BatchScope())
    batch.posts["p"] = {"v": 1}
    batch.member_pending["m"] = 2
    assert tables.posts == {} and tables.member_pending == {}
    assert flush_tables(batch) == 2
    assert tables.posts == {"p": {"v": 1}} and tables.member_pending == {"m": 2}
    assert flush_tables(batch) == 0


def test_up_to_cache_size_values_are_remembered_across_batches() -> None:
    table = RecordingTable({f"k{i}": i for i in range(5)})
    batch = BatchTable(table, cache_size=2)
    for key in ("k0", "k1", "k2"):
        batch.get(key)
    batch["k3"] = 30
    batch.flush()  # remembers the newest two: k2 (read), k3 (written)
    reads = table.reads
    assert (batch.get("k2"), batch.get("k3")) == (2, 30)
    assert table.reads == reads
    assert batch.get("k0") == 0
    assert table.reads == reads + 1
    del batch["k3"]
    batch.flush()
    assert batch.get("k3") is None and table.reads == reads + 1  # the delete is remembered too


def test_forget_drops_what_was_remembered() -> None:
    table = RecordingTable(a=1)
    batch = BatchTable(table, cache_size=10)
    batch.get("a")
    batch.flush()
    table["a"] = 2  # e.g. faust recovering the partition from its changelog after a rebalance
    assert batch.get("a") == 1
    batch.forget()
    assert batch.get("a") == 2
