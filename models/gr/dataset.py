"""A GR training set: member sequences, the post catalog, and the time split."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np

from models.errors import ModelError
from models.gr.config import GRConfig
from models.gr.sequences import MemberSequence, PostCatalog, group_by_member, member_sequence


class DatasetError(ModelError, ValueError):
    """Training data that cannot train a ranker; the message says what is missing."""


class GRDataset(NamedTuple):
    """Sequences of every member; impressions at or after ``split_ms`` are held out."""

    sequences: list[MemberSequence]
    catalog: PostCatalog
    split_ms: int
    embedding_model_version: str
    source: str

    def impressions(self) -> tuple[int, int]:
        """(training, held-out) impression counts."""
        train = held = 0
        for seq in self.sequences:
            late = seq.ts_ms >= self.split_ms
            train += int((seq.is_impression & ~late).sum())
            held += int((seq.is_impression & late).sum())
        return train, held


def split_time(ts_ms: Iterable[int], holdout_fraction: float) -> int:
    """The time that leaves the last ``holdout_fraction`` of the logged time span held out."""
    times = np.fromiter(ts_ms, np.int64)
    if len(times) == 0:
        raise DatasetError("no engagements: export or generate some before training")
    lo, hi = int(times.min()), int(times.max())
    return hi + 1 if holdout_fraction <= 0 else lo + int((hi - lo) * (1.0 - holdout_fraction))


def build_dataset(
    rows: Iterable[Mapping[str, object]],
    catalog: PostCatalog,
    profiles: Mapping[str, np.ndarray],
    config: GRConfig,
    *,
    holdout_fraction: float,
    embedding_model_version: str,
    source: str,
) -> GRDataset:
    """Sequences from engagement rows (member_id, post_id, action, ts_ms, device)."""
    if catalog.embeddings.shape[1] != config.embedding_dim:
        raise DatasetError(
            f"post embeddings have {catalog.embeddings.shape[1]} dims but the GR config "
            f"expects {config.embedding_dim}"
        )
    members = group_by_member(rows)
    split = split_time((e.ts_ms for events in members.values() for e in events), holdout_fraction)
    zeros = np.zeros(config.embedding_dim, np.float32)
    sequences = [
        member_sequence(m, events, catalog, profiles.get(m, zeros), config)
        for m, events in sorted(members.items())
    ]
    dataset = GRDataset(sequences, catalog, split, embedding_model_version, source)
    if dataset.impressions()[0] == 0:
        raise DatasetError("no impressions before the hold-out split: nothing to learn from")
    return dataset
