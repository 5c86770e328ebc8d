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

    def percentiles(
        self, sketches: Table, partition: int, values: Mapping[str, int]
    ) -> dict[str, int]:
        """Each value's percentile among its partition's posts (100 before any sketch exists)."""
        return {f: self._sketch(sketches, f, partition).percentile(v) for f, v in values.items()}

    def note_change(self, sketches: Table, counts: Table, partition: int) -> bool:
        """Count a change on ``partition``; rebuild its sketches when due. True if rebuilt."""
        changes = self._changes.get(partition, 0) + 1
        population = self._population(sketches, partition)
        if changes < max(1, min(self.refresh_every, population // 10)):
            self._changes[partition] = changes
            return False
        self._rebuild(sketches, counts, partition)
        self._changes[partition] = 0
        return True

    def _rebuild(self, sketches: Table, counts: Table, partition: int) -> None:
        owned = [
            PostCounts.model_validate(v) for v in counts.values() if v["partition"] == partition
        ]
        for feature in FEATURES:
            values = (c.values()[feature] for c in owned if feature in c.values())
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
