"""``blend_latest``: the member query vector with the newest engaged post added."""

from __future__ import annotations

import numpy as np
import pytest

from index_store.member_query import blend_latest


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, np.float32)
    return vector / np.linalg.norm(vector)


def test_weight_zero_or_no_latest_leaves_the_member_vector_alone() -> None:
    member, latest = unit(1, 0, 0), unit(0, 1, 0)
    assert blend_latest(member, latest, 0.0) is member
    assert blend_latest(member, None, 2.0) is member


def test_the_blend_is_the_normalised_sum_and_moves_toward_the_latest_post() -> None:
    member, latest = unit(1, 0, 0), unit(0, 1, 0)
    np.testing.assert_allclose(blend_latest(member, latest, 1.0), unit(1, 1, 0), atol=1e-6)
    heavier = blend_latest(member, latest, 3.0)
    np.testing.assert_allclose(heavier, unit(1, 3, 0), atol=1e-6)
    assert float(heavier @ latest) > float(blend_latest(member, latest, 1.0) @ latest)


def test_rows_are_blended_one_by_one_and_stay_unit_length() -> None:
    rng = np.random.default_rng(0)
    members = rng.normal(size=(5, 8)).astype(np.float32)
    members /= np.linalg.norm(members, axis=1, keepdims=True)
    latest = np.roll(members, 1, axis=0)
    blended = blend_latest(members, latest, 1.5)
    assert blended.dtype == np.float32 and blended.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(blended, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(blended[2], blend_latest(members[2], latest[2], 1.5), atol=1e-6)
    opposite = blend_latest(unit(1, 0), unit(-1, 0), 1.0)  # cancels out: zero, not NaN
    assert not np.isnan(opposite).any()


@pytest.mark.parametrize(
    ("latest", "weight", "message"),
    [(unit(0, 1, 0), -0.5, ">= 0"), (unit(0, 1), 1.0, "shape")],
)
def test_bad_arguments_are_refused(latest: np.ndarray, weight: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        blend_latest(unit(1, 0, 0), latest, weight)


def test_the_evaluation_blend_keeps_a_member_without_history_as_the_service_does() -> None:
    from feedline.loo_eval import HeldOut, latest_blended

    items = np.stack([unit(1, 0, 0), unit(0, 1, 0)])
    members = np.stack([unit(0, 0, 1), unit(0, 0, 1)])
    heldout = HeldOut(
        member_ids=["m1", "m2"],
        prompts=["p1", "p2"],
        histories=[np.array([0, 1]), np.array([], np.int64)],  # m2 has no history yet
        targets=np.array([0, 1]),
        negatives=[np.array([], np.int64)] * 2,
    )
    blended = latest_blended(members, heldout, items, 1.0)
    np.testing.assert_allclose(blended[0], unit(0, 1, 1), atol=1e-6)  # the newest item: row 1
    np.testing.assert_allclose(blended[1], members[1], atol=1e-6)
    assert latest_blended(members, heldout, items, 0.0) is members
