"""Per-partition percentile sketches of post features, kept in a (changelogged) table.

A KLL sketch cannot forget a value, yet a post's counts change all the time: inserting every
new count would weight each post by its engagement volume. So each partition's sketch of a
feature is rebuilt from the *current* values of the posts that partition owns, whenever the
partition has seen enough changes (10% of its posts, at most ``refresh_every``), and stored
serialised in a table. The table's changelog makes the sketches survive restarts; keys are
``"<feature>@<partition>"`` so each sketch moves with its partition on a rebalance.

A post's percentile is read from its own partition's sketch: partitions are a uniform sample
of posts by key, so every partition estimates the same distribution, independently of which
worker owns which partitions.

Rebuilds read the partition's current values from an in-memory mirror, not from the counts
table: the table holds every partition's posts (and on RocksDB each read decodes JSON), so a
scan per rebuild cost the whole table every ``refresh_every`` changes. The mirror of a
partition is filled by one scan of the table at its first rebuild and then kept current by
``note_change``; ``forget()`` drops it when partitions move, as the next owner's changes do
not pass through here. It costs about 180 bytes per owned post (120 for the values, the
rest its key).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from pydantic import BaseModel

from processors.percentiles import FEATURES, PercentileSketch

Table = MutableMapping[str, Any]
ACTION_COUNTERS = {"impression": "views", "like": "likes", "comment": "comments", "share": "shares"}


class PostCounts(BaseModel):
    """A post's current numeric features and the partition that owns it."""

    partition: int
    views: int = 0
    likes: int = 0
    comments: int = 0
    shares: int = 0
    followers: int | None = None

    def values(self) -> dict[str, int]:
        """Feature → value, without features that are unknown (followers may be)."""
        return {f: v for f in FEATURES if (v := getattr(self, f)) is not None}


class PartitionSketches:
    """Reads percentiles from, and rebuilds, the sketches stored in a table."""

    def __init__(self, k: int, refresh_every: int = 1_000) -> None:
        self.k = k
        self.refresh_every = refresh_every
        self._changes: dict[int, int] = {}
        self._cache: dict[str, tuple[int, PercentileSketch]] = {}
        self._mirrors: dict[int, dict[str, tuple[int | None, ...]]] = {}
        """partition → post_id → the post's values in ``FEATURES`` order (None: unknown)."""

    def percentiles(
        self, sketches: Table, partition: int, values: Mapping[str, int]
    ) -> dict[str, int]:
        """Each value's percentile among its partition's posts (100 before any sketch exists)."""
        return {f: self._sketch(sketches, f, partition).percentile(v) for f, v in values.items()}

    def note_change(
        self, sketches: Table, counts: Table, post_id: str, current: PostCounts
    ) -> bool:
        """Count a change of ``post_id`` (now ``current``, as stored in ``counts``) on its
        partition; rebuild that partition's sketches when due. True if rebuilt."""
        partition = current.partition
        mirror = self._mirrors.get(partition)
        if mirror is not None:
            mirror[post_id] = _row(current)
        changes = self._changes.get(partition, 0) + 1
        population = self._population(sketches, partition)
        if changes < max(1, min(self.refresh_every, population // 10)):
            self._changes[partition] = changes
            return False
        self._rebuild(sketches, counts, partition)
        self._changes[partition] = 0
        return True

    def forget(self) -> None:
        """Drop every partition's mirror (partitions moved): the next rebuild reads the table."""
        self._mirrors.clear()

    def _rebuild(self, sketches: Table, counts: Table, partition: int) -> None:
        mirror = self._mirrors.get(partition)
        if mirror is None:
            mirror = self._mirrors[partition] = {
                post_id: _row(PostCounts.model_validate(stored))
                for post_id, stored in counts.items()
                if stored["partition"] == partition
            }
        for column, feature in enumerate(FEATURES):
            values = (v for row in mirror.values() if (v := row[column]) is not None)
            sketch = PercentileSketch.of(values, self.k)
            key = f"{feature}@{partition}"
            generation = int((sketches.get(key) or {}).get("generation", 0)) + 1
            sketches[key] = {"b64": sketch.to_b64(), "n": sketch.count, "generation": generation}
            self._cache[key] = (generation, sketch)

    def _population(self, sketches: Table, partition: int) -> int:
        stored = sketches.get(f"{FEATURES[0]}@{partition}")
        return int(stored["n"]) if stored else 0

    def _sketch(self, sketches: Table, feature: str, partition: int) -> PercentileSketch:
        key = f"{feature}@{partition}"
        stored = sketches.get(key)
        if stored is None:
            return PercentileSketch(k=self.k)
        cached = self._cache.get(key)
        if cached is None or cached[0] != stored["generation"]:
            cached = (int(stored["generation"]), PercentileSketch.from_b64(stored["b64"]))
            self._cache[key] = cached
        return cached[1]


def _row(counts: PostCounts) -> tuple[int | None, ...]:
    return tuple(getattr(counts, feature) for feature in FEATURES)
