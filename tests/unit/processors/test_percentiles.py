"""``processors.percentiles``: percentile tokens over KLL sketches, against exact percentiles."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from processors.percentiles import (
    DEFAULT_K,
    FEATURE_TAGS,
    FEATURES,
    PercentileSketch,
    render_percentile,
    to_percentile,
    wrapper_tokens,
)

N = 100_000


def lognormal_counts() -> np.ndarray:
    """View-like counts: heavy tail, many ties among small values."""
    return np.floor(np.random.default_rng(7).lognormal(3.0, 1.5, N)).astype(np.int64)


def zipf_counts() -> np.ndarray:
    """Like-like counts: most posts at 1, a few enormous."""
    return np.minimum(np.random.default_rng(11).zipf(1.6, N), 1_000_000).astype(np.int64)


def exact_percentiles(values: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """ceil(100 * share of values <= x), clamped to 1..100."""
    share = np.searchsorted(np.sort(values), xs, side="right") / len(values)
    return np.clip(np.ceil(100 * share - 1e-9), 1, 100).astype(np.int64)


def grid(values: np.ndarray) -> np.ndarray:
    """Every 0.5% quantile of ``values`` plus values below, between and beyond them."""
    quantiles = np.quantile(values, np.linspace(0, 1, 201), method="lower")
    extra = [-1, 0, 1, 2, 3, 5, 10, 100, int(values.max()) + 1]
    return np.unique(np.concatenate([quantiles, extra]))


def max_error(sketch: PercentileSketch, values: np.ndarray) -> int:
    xs = grid(values)
    estimated = np.array([sketch.percentile(float(x)) for x in xs])
    return int(np.abs(estimated - exact_percentiles(values, xs)).max())


def tolerance(sketch: PercentileSketch) -> int:
    return math.ceil(100 * sketch.normalized_rank_error()) + 1


# --- tokens ----------------------------------------------------------------------------------


def test_features_and_tags() -> None:
    assert FEATURES == ("views", "likes", "comments", "shares", "followers")
    assert FEATURE_TAGS["followers"] == "follower_pct"


def test_wrapper_tokens() -> None:
    assert wrapper_tokens() == [
        "<view_pct>",
        "</view_pct>",
        "<like_pct>",
        "</like_pct>",
        "<comment_pct>",
        "</comment_pct>",
        "<share_pct>",
        "</share_pct>",
        "<follower_pct>",
        "</follower_pct>",
    ]


@pytest.mark.parametrize(
    ("feature", "percentile", "rendered"),
    [
        ("views", 71, "<view_pct>71</view_pct>"),
        ("likes", 1, "<like_pct>1</like_pct>"),
        ("followers", 100, "<follower_pct>100</follower_pct>"),
    ],
)
def test_render_percentile(feature: str, percentile: int, rendered: str) -> None:
    assert render_percentile(feature, percentile) == rendered


def test_render_of_an_unknown_feature_fails_loudly() -> None:
    with pytest.raises(KeyError):
        render_percentile("reposts", 5)


@pytest.mark.parametrize(
    ("rank", "percentile"),
    [
        (0.0, 1),
        (-0.5, 1),
        (0.001, 1),
        (0.01, 1),
        (0.0101, 2),
        (0.07, 7),  # 0.07 * 100 == 7.000000000000001 in floating point
        (0.29, 29),
        (0.57, 57),
        (0.5, 50),
        (0.71, 71),
        (0.991, 100),
        (1.0, 100),
        (1.5, 100),
    ],
)
def test_to_percentile(rank: float, percentile: int) -> None:
    assert to_percentile(rank) == percentile


# --- sketches --------------------------------------------------------------------------------


def test_docstring_example() -> None:
    sketch = PercentileSketch.of([0, 0, 3, 10, 250])
    assert sketch.count == 5
    assert [sketch.percentile(x) for x in (-1, 0, 3, 10, 250, 10_000)] == [1, 40, 60, 80, 100, 100]


def test_empty_sketch_answers_100() -> None:
    sketch = PercentileSketch()
    assert sketch.count == 0
    assert sketch.rank(5) == 1.0
    assert [sketch.percentile(x) for x in (0, 1, 1e9)] == [100, 100, 100]
    sketch.update([])
    assert sketch.count == 0


def test_update_adds_values() -> None:
    sketch = PercentileSketch.of([1, 2])
    sketch.update(iter([3, 4]))
    assert sketch.count == 4
    assert sketch.percentile(2) == 50


def test_rank_error_bound() -> None:
    assert PercentileSketch().normalized_rank_error() == pytest.approx(0.0133, abs=0.001)
    assert DEFAULT_K == 200
    coarse = PercentileSketch(k=50).normalized_rank_error()
    assert coarse > PercentileSketch().normalized_rank_error()


@pytest.mark.parametrize("counts", [lognormal_counts, zipf_counts], ids=["lognormal", "zipf"])
def test_bucketing_matches_exact_percentiles_within_the_error_bound(
    counts: Callable[[], np.ndarray],
) -> None:
    values = counts()
    assert len(np.unique(values)) < N // 10  # many ties
    sketch = PercentileSketch.of(values)
    assert sketch.count == N
    assert max_error(sketch, values) <= tolerance(sketch)


def test_serialised_sketch_answers_identically() -> None:
    values = lognormal_counts()
    sketch = PercentileSketch.of(values)
    data = sketch.to_b64()
    assert isinstance(data, str)
    assert data.isascii()
    copy = PercentileSketch.from_b64(data)
    assert copy.count == sketch.count
    xs = grid(values)
    assert [copy.percentile(float(x)) for x in xs] == [sketch.percentile(float(x)) for x in xs]


def test_merge_of_halves_approximates_the_whole() -> None:
    values = zipf_counts()
    first, second = PercentileSketch.of(values[: N // 2]), PercentileSketch.of(values[N // 2 :])
    first.merge(second)
    whole = PercentileSketch.of(values)
    assert first.count == N
    assert max_error(first, values) <= tolerance(first)
    xs = grid(values)
    merged = np.array([first.percentile(float(x)) for x in xs])
    direct = np.array([whole.percentile(float(x)) for x in xs])
    assert int(np.abs(merged - direct).max()) <= tolerance(whole)
