"""Every post of the catalogue as a negative of every query: a bank of the catalogue's
embeddings, re-embedded by the current weights every few steps, with no gradient through it.

In-batch and random negatives rarely include the posts that compete with the positive under
full ranking (its text neighbours: the same product line, the same brand), so a model trained
on them alone learns to push random posts away while the ranking over the whole catalogue gets
worse. Scoring each query against the whole catalogue each step, as full ranking does, aligns
the loss with the metric; the bank is stale by at most ``refresh_every`` steps, as in
ANCE (Xiong et al., 2021) and cross-batch memory (Wang et al., 2020). The row's positive is
still embedded live (the gradient on the doc side comes from it and the in-batch docs).

A bank column is never a negative of a row when it is one of that member's engaged posts (a
false negative, like full ranking's exclusion of seen items) nor when the same text is among
the step's live docs (it is scored there already, with gradient).

Example::

    bank = CatalogueNegatives(post_prompts, refresh_every=40)
    bank.refresh_if_due(step, encoder.encode)              # at step 0, 40, 80, ...
    docs, exclude = bank.extend(live_docs, batch.docs, batch.exclude, engaged_per_row)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from models.errors import ModelError


class CatalogueNegatives:
    """The catalogue's prompts, their latest embeddings, and the masks that keep the bank's
    false negatives out of the loss."""

    def __init__(self, prompts: Sequence[str], refresh_every: int) -> None:
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be at least 1, got {refresh_every}")
        self.prompts = list(dict.fromkeys(prompts))
        if not self.prompts:
            raise ModelError("catalogue negatives need a catalogue with at least one post")
        self.refresh_every = refresh_every
        self._column = {prompt: j for j, prompt in enumerate(self.prompts)}
        self._embeddings: torch.Tensor | None = None
        self.refreshes = 0
        """How many times the bank was (re-)embedded."""

    def __len__(self) -> int:
        return len(self.prompts)

    def refresh_if_due(
        self, step: int, encode: Callable[[Sequence[str]], np.ndarray], device: torch.device
    ) -> bool:
        """Re-embed the catalogue with ``encode`` (unit rows, no gradient) before steps
        0, ``refresh_every``, 2 × ``refresh_every``, …; returns whether it did."""
        if self._embeddings is not None and step % self.refresh_every:
            return False
        vectors = encode(self.prompts)  # (N, D)
        self._embeddings = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(
            device
        )
        self.refreshes += 1
        return True

    def extend(
        self,
        docs: torch.Tensor,
        doc_texts: Sequence[str],
        exclude: np.ndarray,
        engaged: Sequence[frozenset[str]],
    ) -> tuple[torch.Tensor, np.ndarray]:
        """The step's live ``docs`` ``(B + M, D)`` followed by the bank ``(N, D)``, and
        ``exclude`` ``(B, B + M)`` widened to ``(B, B + M + N)``.

        ``engaged[i]`` holds the prompts of every post row ``i``'s member engaged with; those
        columns, and the columns of every text in ``doc_texts``, are excluded.
        """
        if self._embeddings is None:
            raise ModelError("the catalogue bank was never embedded: call refresh_if_due first")
        if len(engaged) != exclude.shape[0]:
            raise ValueError(f"{len(engaged)} engaged sets for {exclude.shape[0]} rows")
        bank_exclude = np.zeros((exclude.shape[0], len(self.prompts)), dtype=bool)  # (B, N)
        live = self._columns(doc_texts)
        bank_exclude[:, live] = True
        for row, prompts in enumerate(engaged):
            bank_exclude[row, self._columns(prompts)] = True
        bank = self._embeddings.to(dtype=docs.dtype)
        return torch.cat([docs, bank], dim=0), np.concatenate([exclude, bank_exclude], axis=1)

    def _columns(self, texts: Sequence[str] | frozenset[str]) -> list[int]:
        return [self._column[text] for text in texts if text in self._column]
