from __future__ import annotations

import pytest
import torch

from models.gr.attention import attend, shared_context_mask


def test_mask_lets_candidates_see_history_and_themselves_only() -> None:
    mask = shared_context_mask(history_len=3, n_candidates=2)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],  # candidate 1: history + itself
            [1, 1, 1, 0, 1],  # candidate 2: history + itself, not candidate 1
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


def test_mask_without_history_is_the_identity() -> None:
    assert torch.equal(shared_context_mask(0, 4), torch.eye(4, dtype=torch.bool))


@pytest.mark.parametrize(("history_len", "n_candidates"), [(0, 5), (7, 0), (130, 70), (300, 260)])
def test_flex_block_mask_equals_dense_sdpa(history_len: int, n_candidates: int) -> None:
    g = torch.Generator().manual_seed(history_len + n_candidates)
    q, k, v = (torch.randn(2, 2, history_len + n_candidates, 8, generator=g) for _ in range(3))
    dense = attend(q, k, v, history_len, "sdpa")
    flex = attend(q, k, v, history_len, "flex")
    assert (dense - flex).abs().max().item() <= 1e-5
