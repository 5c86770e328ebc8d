from __future__ import annotations

import numpy as np
import pytest

from models.gr.config import GRConfig
from models.gr.dataset import DatasetError, build_dataset, split_time
from models.gr.sequences import PostCatalog, group_by_member, member_sequence, windows
from tests.unit.models.gr.gr_fixtures import unit_rows

CONFIG = GRConfig(embedding_dim=8, d_model=16, n_heads=2)


def _catalog() -> PostCatalog:
    return PostCatalog(
        rows={"p1": 0, "p2": 1},
        embeddings=unit_rows(np.random.default_rng(0), 2, 8),
        authors=["a", "b"],
        formats=["text", "video"],
    )


def _row(member: str, post: str, action: str, ts: int) -> dict[str, object]:
    return {"member_id": member, "post_id": post, "action": action, "ts_ms": ts, "device": None}


def test_follow_ups_label_the_latest_impression_of_the_same_post() -> None:
    rows = [
        _row("m", "p1", "impression", 1),
        _row("m", "p2", "impression", 2),
        _row("m", "p1", "impression", 3),
        _row("m", "p1", "like", 4),
        _row("m", "p2", "skip", 5),
        _row("m", "p9", "share", 6),  # no impression of p9: labels nothing
    ]
    events = group_by_member(reversed(rows))["m"]  # any log order
    seq = member_sequence("m", events, _catalog(), np.zeros(8, np.float32), CONFIG)
    tasks = CONFIG.tasks
    assert seq.is_impression.tolist() == [True, True, True, False, False, False]
    assert seq.labels[2, tasks.index("like")] == 1 and seq.labels[0].sum() == 0
    assert seq.labels[1, tasks.index("skip")] == 1
    assert seq.labels.sum() == 2
    assert seq.post_rows.tolist() == [0, 1, 0, 0, 1, -1]


@pytest.mark.parametrize("length", [0, 1, 5, 10, 11, 17, 100, 1001])
def test_windows_make_every_step_a_target_exactly_once(length: int) -> None:
    size = 10
    seen = np.zeros(length, np.int64)
    for start, end, first in windows(length, size):
        assert 0 <= start <= first < end <= length and end - start <= size
        assert start == 0 or first - start >= size // 2  # later windows keep context
        seen[first:end] += 1
    assert (seen == 1).all()


def test_split_time_holds_out_the_last_share_of_the_span() -> None:
    assert split_time([0, 50, 100], 0.2) == 80
    assert split_time([0, 100], 0.0) == 101  # nothing held out
    with pytest.raises(DatasetError, match="no engagements"):
        split_time([], 0.2)


def test_dataset_refuses_mismatched_embeddings_and_no_training_impressions() -> None:
    rows = [_row("m", "p1", "impression", 1)]
    with pytest.raises(DatasetError, match="expects 16"):
        build_dataset(
            rows,
            _catalog(),
            {},
            GRConfig(embedding_dim=16, d_model=16, n_heads=2),
            holdout_fraction=0.2,
            embedding_model_version="v",
            source="t",
        )
    late_only = [_row("m", "p2", "click", 1), _row("m", "p1", "impression", 100)]
    with pytest.raises(DatasetError, match="no impressions before"):
        build_dataset(
            late_only,
            _catalog(),
            {},
            CONFIG,
            holdout_fraction=0.5,
            embedding_model_version="v",
            source="t",
        )
