"""InfoNCE over in-batch, hard and easy negatives, and its temperature.

Row ``i`` of the queries has ``docs[i]`` as its positive; every other doc is a negative: the
other rows' positives (in-batch negatives) and the hard and easy negatives of every row,
stacked after the positives. Cosine similarity divided by the temperature are the logits.

Example::

    queries = encoder(member_prompts)                  # (B, D)
    docs = encoder(positives + negatives)              # (B + M, D)
    loss = info_nce(queries, docs, temperature())      # scalar
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 1.0


def info_nce(
    queries: torch.Tensor,
    docs: torch.Tensor,
    temperature: torch.Tensor | float,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of picking ``docs[i]`` for ``queries[i]`` among all ``docs``.

    Args:
        queries: ``(B, D)`` query embeddings (any scale; L2-normalised here).
        docs: ``(B + M, D)`` doc embeddings, the ``B`` positives first, then ``M`` negatives.
        temperature: a positive scalar (float or 0-d tensor, e.g. ``Temperature()()``).
        exclude: optional ``(B, B + M)`` bool, True where a doc must not count as a negative
            for that row (a duplicate of its positive); the diagonal must be False.

    Returns: a 0-d float32 tensor. Computed in float32 even under autocast.
    """
    rows = queries.shape[0]
    if docs.shape[0] < rows or docs.shape[1] != queries.shape[1]:
        raise ValueError(
            f"docs {tuple(docs.shape)} must hold at least the {rows} positives of queries "
            f"{tuple(queries.shape)}, with the same width"
        )
    with torch.autocast(queries.device.type, enabled=False):
        q = F.normalize(queries.float(), dim=-1)  # (B, D)
        d = F.normalize(docs.float(), dim=-1)  # (B + M, D)
        logits = q @ d.T / temperature  # (B, B + M)
        if exclude is not None:
            logits = logits.masked_fill(exclude.to(logits.device), float("-inf"))
        targets = torch.arange(rows, device=logits.device)  # (B,)
        return F.cross_entropy(logits, targets)


class Temperature(nn.Module):
    """The InfoNCE temperature: learned (as ``log τ``, like CLIP) or fixed.

    ``forward()`` returns ``τ`` as a 0-d tensor, clamped to [0.01, 1.0] so a learned value can
    neither blow the logits up nor flatten them.
    """

    def __init__(self, initial: float = 0.05, learned: bool = False) -> None:
        super().__init__()
        if not MIN_TEMPERATURE <= initial <= MAX_TEMPERATURE:
            raise ValueError(
                f"temperature {initial} is outside [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}]"
            )
        self.learned = learned
        log_tau = torch.tensor(math.log(initial))
        if learned:
            self.log_tau = nn.Parameter(log_tau)
        else:
            self.register_buffer("log_tau", log_tau)

    def forward(self) -> torch.Tensor:
        """The current temperature, 0-d."""
        return self.log_tau.exp().clamp(MIN_TEMPERATURE, MAX_TEMPERATURE)

    def value(self) -> float:
        """The current temperature as a float."""
        return float(self().detach())
