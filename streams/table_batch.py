"""Table writes held for one batch of records and written once per key when it ends.

The prompt processor handles records in batches (``streams.prompt_worker``). Inside a batch a
hot key is written many times: a post's counts on each engagement, a member's history, state
and pending mark on each positive one. Written straight through, every write is a RocksDB
put and a changelog record. A ``BatchTable`` in front of the Faust table keeps the batch's
writes and deletes in memory, answers reads from them first (so the handlers see their own
writes, as with the table itself), and ``flush()`` writes each changed key to the table once,
with its last value. The changelog then carries one record per key and batch, the newest,
which is all a compacted changelog keeps anyway.

A Faust table puts a key in the partition of the record being handled (its changelog
partition and its RocksDB database both come from faust's *current event*). So every change
remembers the partition of the record that made it (``BatchScope``), and ``flush()`` writes
each partition's changes inside ``in_partition(partition)``, which the worker makes a record
of that partition faust's current event again.

Why it is safe for the commit point: the worker calls ``flush()`` before it marks the batch's
records processed, and every changelog send it causes is tracked, so an offset is committed
only once the batch's last values are in Kafka. A crash before that replays the batch from the
last commit; the handlers are idempotent under replay (versions only grow).
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, MutableMapping, ValuesView
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import Any

from streams.prompt_handlers import PromptTables

_ABSENT = object()
_DELETED = object()
InPartition = Callable[[int], AbstractContextManager[object]]
"""Context in which a table write lands in the given partition."""


def anywhere(partition: int) -> AbstractContextManager[object]:
    """For plain dicts, which have no partitions."""
    return nullcontext()


@dataclass
class BatchScope:
    """The partition of the record being handled, shared by a batch's tables."""

    partition: int = 0


class BatchTable(MutableMapping[str, Any]):
    """A write-behind view of ``table`` for one batch at a time (see the module docstring).

    It also remembers up to ``cache_size`` values it read or wrote, across batches: only its
    own agent writes these keys, and only through this view, so a remembered value is the
    table's value for as long as the worker owns the key's partition. ``forget()`` drops them
    when partitions move (faust then rewrites the table from changelogs)."""

    def __init__(
        self,
        table: MutableMapping[str, Any],
        scope: BatchScope | None = None,
        cache_size: int = 0,
    ) -> None:
        self.table = table
        self.scope = scope if scope is not None else BatchScope()
        self.cache_size = cache_size
        self._changes: dict[str, tuple[int, Any]] = {}
        """key → (partition of the record that changed it, last value or ``_DELETED``)."""
        self._known: dict[str, Any] = {}
        """Values read or written (``_ABSENT`` for a missing key), oldest first: this batch's
        reads, plus up to ``cache_size`` from earlier batches."""

    @property
    def pending(self) -> int:
        """Keys written or deleted since the last ``flush()``."""
        return len(self._changes)

    def get(self, key: str, default: Any = None) -> Any:
        """The batch's value of ``key``, else the table's, else ``default``."""
        change = self._changes.get(key)
        if change is not None:
            return default if change[1] is _DELETED else change[1]
        value = self._known.get(key, _ABSENT)
        if value is _ABSENT and key not in self._known:
            value = self._known[key] = self.table.get(key, _ABSENT)
        return default if value is _ABSENT else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._changes[key] = (self.scope.partition, value)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._changes[key] = (self.scope.partition, _DELETED)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _ABSENT) is not _ABSENT

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._merged())

    def items(self) -> ItemsView[str, Any]:
        """Pairs from the table's own ``items()`` (a Faust table answers ``get`` only for the
        current record's partition, yet iterates all of them), the batch's changes first."""
        return _Items(self)

    def values(self) -> ValuesView[Any]:
        """Like ``items()``."""
        return _Values(self)

    def _merged(self) -> Iterator[tuple[str, Any]]:
        changes = dict(self._changes)
        yield from ((key, value) for key, (_, value) in changes.items() if value is not _DELETED)
        yield from ((key, value) for key, value in list(self.table.items()) if key not in changes)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flush(self, in_partition: InPartition = anywhere) -> int:
        """Write every changed key to the table once (its last value; deleted keys go), each
        inside ``in_partition`` of the record that changed it; returns how many keys."""
        by_partition: dict[int, list[tuple[str, Any]]] = {}
        for key, (partition, value) in self._changes.items():
            by_partition.setdefault(partition, []).append((key, value))
        for partition, changes in by_partition.items():
            with in_partition(partition):
                for key, value in changes:
                    if value is _DELETED:
                        self.table.pop(key, None)
                    else:
                        self.table[key] = value
                    self._known.pop(key, None)  # re-inserted: the newest go last
                    self._known[key] = _ABSENT if value is _DELETED else value
        changed = len(self._changes)
        self._changes.clear()
        for _ in range(len(self._known) - self.cache_size):
            del self._known[next(iter(self._known))]
        return changed

    def forget(self) -> None:
        """Drop every remembered value (partitions moved); changes in hand are kept."""
        self._known.clear()


class _Items(ItemsView[str, Any]):
    _mapping: BatchTable

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._mapping._merged()


class _Values(ValuesView[Any]):
    _mapping: BatchTable

    def __iter__(self) -> Iterator[Any]:
        return (value for _, value in self._mapping._merged())


def batch_tables(tables: PromptTables, scope: BatchScope, cache_size: int = 0) -> PromptTables:
    """``tables`` with a ``BatchTable`` in front of each, all following ``scope``."""
    return PromptTables(
        **{f.name: BatchTable(getattr(tables, f.name), scope, cache_size) for f in fields(tables)}
    )


def flush_tables(tables: PromptTables, in_partition: InPartition = anywhere) -> int:
    """``flush()`` every ``BatchTable`` of ``tables``; returns the keys written or deleted."""
    return sum(table.flush(in_partition) for table in _batched(tables))


def forget_tables(tables: PromptTables) -> None:
    """``forget()`` every ``BatchTable`` of ``tables``."""
    for table in _batched(tables):
        table.forget()


def _batched(tables: PromptTables) -> list[BatchTable]:
    return [t for f in fields(tables) if isinstance(t := getattr(tables, f.name), BatchTable)]
