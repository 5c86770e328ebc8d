"""Which members have a change the debounce held back, per partition, kept in memory.

The ``member_pending`` table (member_id → partition, changelogged) is what survives a restart:
it holds every member whose prompt a tick still has to flush. A tick flushes one partition,
and reading that partition's members from the table meant iterating all of it (every owned
partition, each value decoded on RocksDB) on every tick of every partition: a cost that grows
with the members pending, paid four times a second per partition, whatever the load.

``PendingMembers`` mirrors the table instead: the first tick after start or a rebalance scans
the table once, and from then on the member side reports each mark and clear it writes, so
a tick reads only its own partition's set. ``forget()`` drops the mirror when partitions move
(faust then rewrites the table from its changelog, and the next owner's writes do not pass
through here). The same pattern as the percentile sketches' mirror
(``processors.feature_sketches``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PendingMembers:
    """A partition → pending members mirror of the ``member_pending`` table."""

    def __init__(self) -> None:
        self._by_partition: dict[int, dict[str, None]] | None = None
        """partition → member ids in the order they became pending; None: not loaded."""
        self._partition_of: dict[str, int] = {}

    @property
    def loaded(self) -> bool:
        """Whether the mirror holds the table (after a ``due`` since the last ``forget``)."""
        return self._by_partition is not None

    def due(self, table: Mapping[str, Any], partition: int) -> list[str]:
        """The members pending on ``partition``; scans ``table`` first if not loaded."""
        if self._by_partition is None:
            self._by_partition = {}
            self._partition_of = {}
            for member_id, owner in list(table.items()):
                self._add(member_id, int(owner))
        return list(self._by_partition.get(partition, ()))

    def mark(self, member_id: str, partition: int) -> None:
        """``member_id`` became pending on ``partition`` (the table got the same write)."""
        if self._by_partition is not None:
            self.clear(member_id)
            self._add(member_id, partition)

    def clear(self, member_id: str) -> None:
        """``member_id`` is no longer pending (the table lost the key)."""
        if self._by_partition is None:
            return
        owner = self._partition_of.pop(member_id, None)
        if owner is not None:
            members = self._by_partition[owner]
            members.pop(member_id, None)
            if not members:
                del self._by_partition[owner]

    def forget(self) -> None:
        """Drop the mirror (partitions moved): the next ``due`` reads the table again."""
        self._by_partition = None
        self._partition_of = {}

    def _add(self, member_id: str, partition: int) -> None:
        assert self._by_partition is not None
        self._by_partition.setdefault(partition, {})[member_id] = None
        self._partition_of[member_id] = partition
