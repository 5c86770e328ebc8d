"""``models.dual.catalogue_negatives``: the whole catalogue as negatives, refreshed every few
steps, with the member's engaged posts and the step's live docs kept out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from models.dual.catalogue_negatives import CatalogueNegatives
from models.dual.loss import info_nce
from models.errors import ModelError

CPU = torch.device("cpu")
CATALOGUE = ["post a", "post b", "post c", "post d"]


class CountingEncoder:
    """Unit vectors along the axis of each post's letter, scaled by the call number so a
    refresh is visible in the bank."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, "abcd".index(text[-1])] = float(self.calls)
        return out


def test_the_bank_is_embedded_before_step_zero_and_every_refresh_steps() -> None:
    bank = CatalogueNegatives(CATALOGUE, refresh_every=3)
    encoder = CountingEncoder()
    refreshed = [bank.refresh_if_due(step, encoder.encode, CPU) for step in range(7)]
    assert refreshed == [True, False, False, True, False, False, True]
    assert bank.refreshes == encoder.calls == 3
    docs, _ = bank.extend(torch.zeros(1, 4), ["live"], np.zeros((1, 1), dtype=bool), [frozenset()])
    assert docs[1:].max().item() == 3.0  # the third embedding, not the first


def test_live_docs_and_engaged_posts_are_never_bank_negatives() -> None:
    bank = CatalogueNegatives([*CATALOGUE, "post a"], refresh_every=1)  # a repeat kept once
    assert len(bank) == 4
    bank.refresh_if_due(0, CountingEncoder().encode, CPU)
    live = torch.ones(3, 4)  # two positives, one negative
    exclude = np.array([[False, False, False], [False, False, True]])
    engaged = [frozenset({"post d", "a post outside the catalogue"}), frozenset()]
    docs, widened = bank.extend(live, ["post b", "x", "y"], exclude, engaged)
    assert docs.shape == (3 + 4, 4)
    assert torch.equal(docs[:3], live)  # the live docs first, untouched
    assert widened.shape == (2, 3 + 4)
    assert widened[:, :3].tolist() == exclude.tolist()
    assert widened[:, 3:].tolist() == [
        [False, True, False, True],  # b is live; d is engaged by row 0
        [False, True, False, False],
    ]


def test_a_competitor_in_the_catalogue_raises_the_loss_unless_it_is_engaged() -> None:
    query = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    positive = torch.tensor([[0.9, 0.44, 0.0, 0.0]])
    bank = CatalogueNegatives(["near", "far"], refresh_every=1)
    near_and_far = np.array([[0.95, 0.0, 0.31, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    bank.refresh_if_due(0, lambda texts: near_and_far, CPU)
    no_exclude = np.zeros((1, 1), dtype=bool)
    alone = info_nce(query, positive, 0.05)
    docs, exclude = bank.extend(positive, ["positive"], no_exclude, [frozenset()])
    against_bank = info_nce(query, docs, 0.05, torch.from_numpy(exclude))
    docs, exclude = bank.extend(positive, ["positive"], no_exclude, [frozenset({"near"})])
    near_engaged = info_nce(query, docs, 0.05, torch.from_numpy(exclude))
    assert against_bank.item() > alone.item() + 1.0  # the near post outranks the positive
    assert near_engaged.item() < alone.item() + 1e-3  # only the far post is left


def test_misuse_is_refused() -> None:
    with pytest.raises(ModelError, match="at least one post"):
        CatalogueNegatives([], refresh_every=1)
    with pytest.raises(ValueError, match="refresh_every"):
        CatalogueNegatives(CATALOGUE, refresh_every=0)
    bank = CatalogueNegatives(CATALOGUE, refresh_every=1)
    with pytest.raises(ModelError, match="never embedded"):
        bank.extend(torch.zeros(1, 4), ["x"], np.zeros((1, 1), dtype=bool), [frozenset()])
    bank.refresh_if_due(0, CountingEncoder().encode, CPU)
    with pytest.raises(ValueError, match="2 engaged sets for 1 rows"):
        bank.extend(torch.zeros(1, 4), ["x"], np.zeros((1, 1), dtype=bool), [frozenset()] * 2)
