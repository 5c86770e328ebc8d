"""Numbers as percentile tokens, over mergeable streaming quantile sketches (DataSketches KLL).

Raw counts carry no ordinal meaning for a language model (the published system measured a
-0.004 correlation between popularity and similarity); a count rendered as its percentile,
1..100, wrapped in special tokens (``<view_pct>71</view_pct>``) does. Every number 1..100 is
one token of the default tokenizer, and each wrapper is registered as one special token
(``models.special_tokens``).

Example::

    sketch = PercentileSketch.of([0, 0, 3, 10, 250])
    sketch.percentile(10)                     # 80: 4 of 5 posts have at most 10
    render_percentile("views", 80)            # '<view_pct>80</view_pct>'
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable

import numpy as np
from datasketches import kll_floats_sketch

#: Numeric post features rendered as percentiles, and the tag each one uses.
FEATURE_TAGS: dict[str, str] = {
    "views": "view_pct",
    "likes": "like_pct",
    "comments": "comment_pct",
    "shares": "share_pct",
    "followers": "follower_pct",
}
FEATURES: tuple[str, ...] = tuple(FEATURE_TAGS)
DEFAULT_K = 200
"""KLL accuracy parameter: ~1.3% normalised rank error at 99% confidence, ~2.5 KB per sketch."""


def wrapper_tokens() -> list[str]:
    """Every opening and closing wrapper, e.g. ``<view_pct>`` and ``</view_pct>``."""
    return [token for tag in FEATURE_TAGS.values() for token in (f"<{tag}>", f"</{tag}>")]


def render_percentile(feature: str, percentile: int) -> str:
    """``<view_pct>71</view_pct>`` for feature ``views`` at percentile 71."""
    tag = FEATURE_TAGS[feature]
    return f"<{tag}>{percentile}</{tag}>"


def to_percentile(rank: float) -> int:
    """A normalised rank in [0, 1] (share of values <= x) as a percentile in 1..100."""
    return max(1, min(100, math.ceil(rank * 100 - 1e-9)))


class PercentileSketch:
    """A KLL sketch of one feature's values, answering "what percentile is x?".

    An empty sketch answers 100 for any value (with nothing to compare against, no value is
    beaten). Sketches serialise to compact bytes and merge across partitions.
    """

    def __init__(self, sketch: kll_floats_sketch | None = None, k: int = DEFAULT_K) -> None:
        self._sketch = sketch if sketch is not None else kll_floats_sketch(k)

    @classmethod
    def of(cls, values: Iterable[float], k: int = DEFAULT_K) -> PercentileSketch:
        """A sketch of ``values``."""
        sketch = cls(k=k)
        sketch.update(values)
        return sketch

    @property
    def count(self) -> int:
        """How many values went in."""
        return int(self._sketch.n)

    def update(self, values: Iterable[float]) -> None:
        """Add values."""
        array = np.fromiter(values, dtype=np.float32)
        if array.size:
            self._sketch.update(array)

    def merge(self, other: PercentileSketch) -> None:
        """Add every value summarised by ``other`` (e.g. another partition's sketch)."""
        self._sketch.merge(other._sketch)

    def rank(self, value: float) -> float:
        """Estimated share of values <= ``value``."""
        if self._sketch.is_empty():
            return 1.0
        return float(self._sketch.get_rank(float(value), True))

    def percentile(self, value: float) -> int:
        """``value`` as a percentile in 1..100."""
        return to_percentile(self.rank(value))

    def normalized_rank_error(self) -> float:
        """The sketch's rank error bound (99% confidence), e.g. 0.0133 for k=200."""
        return float(kll_floats_sketch.get_normalized_rank_error(self._sketch.k, False))

    def to_b64(self) -> str:
        """Serialised form for a JSON table value."""
        return base64.b64encode(self._sketch.serialize()).decode()

    @classmethod
    def from_b64(cls, data: str) -> PercentileSketch:
        """Inverse of ``to_b64``."""
        return cls(kll_floats_sketch.deserialize(base64.b64decode(data)))
