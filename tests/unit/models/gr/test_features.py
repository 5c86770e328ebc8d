from __future__ import annotations

import numpy as np
import pytest

from models.gr.config import GRConfig
from models.gr.features import (
    PostAttrs,
    candidate_features,
    device_index,
    gap_buckets,
    history_features,
)
from processors.engagement_history import HistoryEvent

CONFIG = GRConfig()


def test_gap_buckets_are_log2_seconds_with_a_first_step_bucket() -> None:
    gaps = np.array([-1, 0, 999, 1_000, 2_999, 3_000, 86_400_000, 10**15])
    assert gap_buckets(gaps, 24).tolist() == [0, 1, 1, 2, 2, 3, 17, 23]


def test_devices_outside_the_vocabulary_share_index_zero() -> None:
    assert [device_index(d, CONFIG) for d in ("mobile", "tablet", "watch", None)] == [1, 3, 0, 0]


def test_affinity_counts_only_earlier_steps_by_author_and_format() -> None:
    events = [
        HistoryEvent("p1", "impression", 1_000, "mobile"),
        HistoryEvent("p1", "like", 2_000, "mobile"),
        HistoryEvent("p2", "impression", 5_000, "desktop"),
    ]
    posts = PostAttrs(authors=["a", "a", "b"], formats=["text", "text", "text"])
    steps, counter = history_features(events, posts, CONFIG)
    n = len(CONFIG.actions)
    like, impression = CONFIG.actions.index("like"), CONFIG.actions.index("impression")
    assert not steps.affinity[0].any()  # nothing before the first step
    assert steps.affinity[1][impression] == pytest.approx(
        np.log1p(1)
    )  # author a: one impression before
    assert steps.affinity[2][:n].sum() == 0  # author b: never seen
    assert steps.affinity[2][n + like] == pytest.approx(np.log1p(1))  # format text: one like before
    assert steps.gap.tolist() == [0, 2, 3]  # 1 s, 3 s
    assert steps.device.tolist() == [1, 1, 2]
    cand = candidate_features(
        PostAttrs(["a", "c"], ["video", "text"]), counter, 5_000, 65_000, "tablet", CONFIG
    )
    assert cand.action.tolist() == [impression, impression]
    assert cand.gap.tolist() == [6, 6]  # 60 s since the last step
    assert cand.device.tolist() == [3, 3]
    assert cand.affinity[0][like] == pytest.approx(np.log1p(1)) and cand.affinity[1][:n].sum() == 0


def test_candidates_of_an_empty_history_get_the_first_step_gap() -> None:
    steps, counter = history_features([], PostAttrs([], []), CONFIG)
    assert steps.action.shape == (0,) and steps.affinity.shape == (0, CONFIG.affinity_dim)
    cand = candidate_features(PostAttrs([None], [None]), counter, None, 10, None, CONFIG)
    assert cand.gap.tolist() == [0] and not cand.affinity.any()
