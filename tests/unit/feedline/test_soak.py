"""The soak's workload, ground truth and checks, without a broker."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from feedline.soak import SoakConfig, SoakError, _spread
from feedline.soak_checks import (
    NEWEST,
    SoakReport,
    _check_posts,
    not_newest_last,
    table_version,
    update_version,
)
from feedline.soak_workload import SoakTruth, SoakWorkload, marker
from schemas import EmbeddingUpdate, PostCreated, PostDeleted, encode
from service.api import PostInfo

NOW = 1_700_000_000_000


def test_the_workload_is_seeded_and_starts_with_every_profile() -> None:
    first = SoakWorkload(seed=3, members=5).next_batch(40, NOW)
    again = SoakWorkload(seed=3, members=5).next_batch(40, NOW)
    assert first == again
    assert [type(e).__name__ for e in first[:5]] == ["MemberProfile"] * 5
    assert {type(e).__name__ for e in first[5:]} >= {"PostCreated", "Engagement"}


def test_weights_choose_the_mix_and_unknown_kinds_are_refused() -> None:
    weights = {"post": 1, "engage": 3}
    events = SoakWorkload(seed=2, members=3, weights=weights).next_batch(2_003, NOW)[3:]
    kinds = [type(e).__name__ for e in events]
    assert set(kinds) == {"PostCreated", "Engagement"}
    assert 0.7 < kinds.count("Engagement") / len(kinds) < 0.8
    assert len({e.post_id for e in events if isinstance(e, PostCreated)}) == kinds.count(
        "PostCreated"
    )  # no edits: every PostCreated is a new post
    with pytest.raises(ValueError, match="unknown event kinds \\['repost'\\]"):
        SoakWorkload(seed=2, members=3, weights={"post": 1, "repost": 1})


def test_truth_follows_delivered_events_only_and_deletes_are_final() -> None:
    workload = SoakWorkload(seed=1, members=2)
    batches = [workload.next_batch(25, NOW + i) for i in range(40)]
    for batch in batches[:-1]:
        workload.delivered(batch)
    truth = workload.truth
    assert truth.events == 25 * 39
    for post_id in truth.deleted:  # edits of deleted posts were generated, never counted
        assert post_id not in truth.live_posts()
    revisions = {}
    for batch in batches[:-1]:
        for event in batch:
            if isinstance(event, PostCreated) and event.post_id not in truth.deleted:
                revisions[event.post_id] = event.text.split()[0]
    assert {p: marker(p, r) for p, r in truth.live_posts().items()} == revisions
    assert any(
        isinstance(e, PostCreated) and e.post_id in truth.deleted
        for b in batches
        for e in b
        if not isinstance(e, PostDeleted)
    )


def test_edits_keep_the_creation_time_and_carry_their_own() -> None:
    workload = SoakWorkload(seed=1, members=2)
    events = [e for i in range(40) for e in workload.next_batch(25, NOW + 1_000 * i)]
    posts = [e for e in events if isinstance(e, PostCreated)]
    creations = [p for p in posts if p.text.startswith(marker(p.post_id, 1))]
    edits = [p for p in posts if not p.text.startswith(marker(p.post_id, 1))]
    assert creations and edits
    assert all(p.edited_at_ms is None for p in creations)
    first = {p.post_id: p.created_at_ms for p in creations}
    for edit in edits:
        assert edit.created_at_ms == first[edit.post_id]
        assert edit.edited_at_ms is not None and edit.edited_at_ms >= edit.created_at_ms
    assert any(e.edited_at_ms != e.created_at_ms for e in edits)


def test_an_edit_is_never_dated_before_its_creation_when_the_clock_steps_back() -> None:
    workload = SoakWorkload(seed=1, members=0)
    created = workload._revision("p1", NOW)
    edit = workload._revision("p1", NOW - 5_000)
    assert (edit.created_at_ms, edit.edited_at_ms) == (created.created_at_ms, NOW)


def test_not_newest_last_treats_a_tombstone_as_newest() -> None:
    records = {
        b"live": [upd("live", 1), upd("live", 3), upd("live", 2)],
        b"deleted": [upd("deleted", 4), None],
        b"resurrected": [upd("resurrected", 1), None, upd("resurrected", 2)],
        b"fine": [upd("fine", 1), upd("fine", 2)],
    }
    assert not_newest_last(records, update_version) == ["live", "resurrected"]
    assert table_version(None) == NEWEST
    assert table_version(b'{"post_id": "p", "version": 7}') == 7


class FakeIndex:
    """``QueryClient.post`` over a dict of indexed versions."""

    def __init__(self, versions: dict[str, int]) -> None:
        self.versions = versions

    def post(self, post_id: str) -> PostInfo | None:
        if post_id not in self.versions:
            return None
        return PostInfo(post_id=post_id, version=self.versions[post_id], attrs={},
                        model_version="m", prompt_version="p", event_time_ms=1,
                        indexed_at_ms=2)  # fmt: skip


def test_posts_are_lost_resurrected_or_stale_against_the_truth() -> None:
    truth = SoakTruth(revisions={"ok": 2, "lost": 1, "gone": 1, "old": 3, "behind": 1},
                      deleted={"gone"})  # fmt: skip
    topic = {
        b"ok": [upd("ok", 1, revision=1), upd("ok", 2, revision=2)],
        b"old": [upd("old", 5, revision=2)],  # the newest prompt is of revision 2, not 3
        b"behind": [upd("behind", 1), upd("behind", 2)],
    }
    index = FakeIndex({"ok": 2, "gone": 1, "old": 5, "behind": 1})
    report = SoakReport()
    _check_posts(index, truth, topic, report)  # type: ignore[arg-type]
    assert (report.lost_posts, report.resurrected_posts) == (["lost"], ["gone"])
    assert report.stale_posts == ["behind", "old"]
    assert report.counts()["stale_posts"] == 2


def test_broker_restarts_are_spread_over_the_cycles() -> None:
    assert _spread(4, 100) == {20, 40, 60, 80}
    assert _spread(3, 4) == {1, 2, 3}
    assert _spread(5, 3) == {0, 1, 2}  # never more than the cycles


def test_a_schedule_that_follows_the_roster_is_accepted() -> None:
    steps = ("+embed-3", "-embed-1", "embed-3", "broker", "-serve-1", "+serve-1", "+prompts-3")
    assert SoakConfig(victims=steps).victims == steps


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (("+bogus-1",), "step 1 '+bogus-1': expected broker, NAME"),
        (("embed",), "step 1 'embed': expected"),
        (("++embed-3",), "step 1 '++embed-3': expected"),
        (("broker", "+embed-2"), "step 2 '+embed-2': embed-2 runs already"),
        (("-embed-3",), "step 1 '-embed-3': embed-3 does not run"),
        (("-serve-1", "serve-1"), "step 2 'serve-1': serve-1 does not run"),
    ],
)
def test_a_schedule_that_cannot_run_fails_before_anything_starts(
    steps: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SoakError, match=message.replace("+", r"\+")):
        SoakConfig(victims=steps)


def upd(post_id: str, version: int, revision: int | None = None) -> bytes:
    fields: dict[str, Any] = {
        "entity": "post", "entity_id": post_id, "version": version, "dim": 2,
        "vector_b64": EmbeddingUpdate.encode_vector(np.ones(2)), "model_version": "m",
        "prompt_version": "p", "event_time_ms": 1, "prompted_at_ms": 1, "embedded_at_ms": 1,
        "text": f"text: {marker(post_id, revision or version)} words",
    }  # fmt: skip
    return encode(EmbeddingUpdate(**fields))
