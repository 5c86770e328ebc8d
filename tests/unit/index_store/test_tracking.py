"""``index_store.tracking.FreshnessWindow``: recent freshness percentiles."""

from __future__ import annotations

import pytest

from index_store import FreshnessWindow, IndexStore
from index_store.tracking import STAGES, stage_seconds
from tests.unit.index_store.index_updates import DIM, MODEL, update


def test_empty_window_reports_count_zero() -> None:
    assert FreshnessWindow().percentiles("post") == {"count": 0}


def test_percentiles_over_known_samples() -> None:
    window = FreshnessWindow()
    for seconds in range(1, 101):
        window.observe("post", float(seconds))
    stats = window.percentiles("post")
    assert stats == {"count": 100, "p50": pytest.approx(50.5), "p99": pytest.approx(99.01)}
    assert window.percentiles("member") == {"count": 0}


def test_custom_quantiles_are_named() -> None:
    window = FreshnessWindow()
    for seconds in (1.0, 2.0, 3.0, 4.0):
        window.observe("member", seconds)
    assert window.percentiles("member", (0, 100, 99.9)) == {
        "count": 4,
        "p0": 1.0,
        "p100": 4.0,
        "p99.9": pytest.approx(3.997),
    }


def test_window_keeps_only_the_last_samples() -> None:
    window = FreshnessWindow(size=3)
    for seconds in (100.0, 1.0, 2.0, 3.0):
        window.observe("post", seconds)
    assert window.percentiles("post", (0, 100)) == {"count": 3, "p0": 1.0, "p100": 3.0}


def test_observers_see_every_observation() -> None:
    window = FreshnessWindow()
    seen: list[tuple[str, float]] = []
    window.observers.append(lambda entity, seconds: seen.append((entity, seconds)))
    window.observe("post", 0.5)
    window.observe("member", 1.5)
    assert seen == [("post", 0.5), ("member", 1.5)]


def test_stage_seconds_split_the_time_to_visible_by_stage() -> None:
    record = update("p1", event_time_ms=1_000, prompted_at_ms=1_500, embedded_at_ms=4_000)
    assert stage_seconds(record, now=10.0) == {
        "event_to_prompt": 0.5,
        "prompt_to_embedding": 2.5,
        "embedding_to_visible": 6.0,
    }
    skewed = update("p1", event_time_ms=2_000, prompted_at_ms=1_000, embedded_at_ms=1_500)
    assert stage_seconds(skewed, now=1.0)["event_to_prompt"] == 0.0  # clocks disagree: 0
    assert tuple(stage_seconds(skewed, now=1.0)) == STAGES


def test_applied_live_updates_report_their_stages_replays_do_not() -> None:
    store = IndexStore(dim=DIM, model_version=MODEL)
    seen: list[tuple[str, str, float]] = []
    store.freshness.stage_observers.append(lambda e, s, v: seen.append((e, s, v)))
    store.apply("post", "p1", update("p1", 1), live=False)
    assert seen == []
    store.apply("post", "p2", update("p2", 1))
    store.apply("post", "p2", update("p2", 1))  # stale: not applied, not observed
    assert [(e, s) for e, s, _ in seen] == [
        ("post", "event_to_prompt"),
        ("post", "prompt_to_embedding"),
        ("post", "embedding_to_visible"),
    ]
