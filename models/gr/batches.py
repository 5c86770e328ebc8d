"""Windows of member sequences collated into padded training/eval batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

from models.gr.config import GRConfig
from models.gr.model import GRInputs
from models.gr.sequences import MemberSequence, PostCatalog, windows

Window = tuple[int, int, int, int]
"""(sequence index, start, end, first target position)."""


class SequenceBatch(NamedTuple):
    """``B`` windows right-padded to ``L`` steps (no candidates: ``history_len == L``)."""

    inputs: GRInputs
    labels: torch.Tensor
    """(B, L, N) float task labels."""
    targets: torch.Tensor
    """(B, L) bool: impressions this window is responsible for (not padding, not context)."""
    ts_ms: torch.Tensor
    """(B, L) int64 step times (0 on padding)."""
    post_rows: torch.Tensor
    """(B, L) int64 catalog rows (-1 on padding and unknown posts)."""
    sequence_index: torch.Tensor
    """(B,) int64 which sequence each row came from."""


def all_windows(sequences: Sequence[MemberSequence], max_history: int) -> list[Window]:
    """Every window of every sequence (sequences without impressions are skipped)."""
    return [
        (i, start, end, first)
        for i, seq in enumerate(sequences)
        if seq.is_impression.any()
        for start, end, first in windows(len(seq.post_rows), max_history)
    ]


def batches(
    sequences: Sequence[MemberSequence],
    catalog: PostCatalog,
    config: GRConfig,
    batch_size: int,
    rng: np.random.Generator | None = None,
) -> Iterator[SequenceBatch]:
    """Batches over all windows; shuffled when ``rng`` is given."""
    items = all_windows(sequences, config.max_history)
    order = rng.permutation(len(items)) if rng is not None else np.arange(len(items))
    for lo in range(0, len(items), batch_size):
        yield collate([items[i] for i in order[lo : lo + batch_size]], sequences, catalog, config)


def collate(
    items: Sequence[Window],
    sequences: Sequence[MemberSequence],
    catalog: PostCatalog,
    config: GRConfig,
) -> SequenceBatch:
    """Right-pad ``items`` to the longest window."""
    b, length = len(items), max(end - start for _, start, end, _ in items)
    rows = np.full((b, length), -1, np.int64)
    action, gap, device = (np.zeros((b, length), np.int64) for _ in range(3))
    affinity = np.zeros((b, length, config.affinity_dim), np.float32)
    labels = np.zeros((b, length, len(config.tasks)), np.float32)
    targets = np.zeros((b, length), np.bool_)
    ts = np.zeros((b, length), np.int64)
    profile = np.zeros((b, config.embedding_dim), np.float32)
    for j, (i, start, end, first) in enumerate(items):
        seq, n = sequences[i], end - start
        rows[j, :n] = seq.post_rows[start:end]
        action[j, :n], gap[j, :n] = seq.steps.action[start:end], seq.steps.gap[start:end]
        device[j, :n], affinity[j, :n] = seq.steps.device[start:end], seq.steps.affinity[start:end]
        labels[j, :n], ts[j, :n] = seq.labels[start:end], seq.ts_ms[start:end]
        targets[j, first - start : n] = seq.is_impression[first:end]
        profile[j] = seq.profile
    inputs = GRInputs(
        post_emb=torch.from_numpy(catalog.gather(rows)),
        action=torch.from_numpy(action),
        gap=torch.from_numpy(gap),
        device=torch.from_numpy(device),
        affinity=torch.from_numpy(affinity),
        profile=torch.from_numpy(profile),
        history_len=length,
    )
    return SequenceBatch(
        inputs,
        torch.from_numpy(labels),
        torch.from_numpy(targets),
        torch.from_numpy(ts),
        torch.from_numpy(rows),
        torch.tensor([i for i, *_ in items], dtype=torch.int64),
    )
