"""Small random GR models and requests for the GR unit tests."""

from __future__ import annotations

import numpy as np
import torch

from models.gr.config import GRConfig
from models.gr.model import GenerativeRecommender, GRInputs

SMALL = GRConfig(embedding_dim=16, d_model=32, n_heads=4, n_layers=2, dropout=0.0)


def random_model(config: GRConfig = SMALL, seed: int = 0) -> GenerativeRecommender:
    """A randomly initialised model in eval mode (biases perturbed so nothing is trivially 0)."""
    torch.manual_seed(seed)
    model = GenerativeRecommender(config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def random_inputs(
    history_len: int, n_candidates: int, config: GRConfig = SMALL, seed: int = 0, batch: int = 1
) -> GRInputs:
    """A random request: ``history_len`` steps then ``n_candidates`` impressions."""
    g = torch.Generator().manual_seed(seed)
    length = history_len + n_candidates
    action = torch.randint(0, len(config.actions), (batch, length), generator=g)
    action[:, history_len:] = config.actions.index("impression")
    return GRInputs(
        post_emb=torch.nn.functional.normalize(
            torch.randn(batch, length, config.embedding_dim, generator=g), dim=-1
        ),
        action=action,
        gap=torch.randint(0, config.gap_buckets, (batch, length), generator=g),
        device=torch.randint(0, len(config.devices) + 1, (batch, length), generator=g),
        affinity=torch.rand(batch, length, config.affinity_dim, generator=g),
        profile=torch.nn.functional.normalize(
            torch.randn(batch, config.embedding_dim, generator=g), dim=-1
        ),
        history_len=history_len,
    )


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random L2-normalised float32 rows."""
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
