"""Serving-time scoring: one member's history plus ``K`` candidates in one forward pass.

Example::

    inputs = request_inputs(history, history_vectors, history_attrs, cand_vectors,
                            cand_attrs, profile, now_ms=now, device="mobile", config=config)
    probs = score(model, inputs)              # (K, N) task probabilities
    ranking = combined_score(probs, config.tasks, config.task_weights)  # (K,)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from models.gr.attention import AttentionImpl
from models.gr.config import GRConfig
from models.gr.features import PostAttrs, candidate_features, history_features
from models.gr.model import GenerativeRecommender, GRInputs
from processors.engagement_history import HistoryEvent


def request_inputs(
    history: Sequence[HistoryEvent],
    history_vectors: np.ndarray,
    history_posts: PostAttrs,
    candidate_vectors: np.ndarray,
    candidate_posts: PostAttrs,
    profile: np.ndarray | None,
    *,
    now_ms: int,
    device: str | None,
    config: GRConfig,
) -> GRInputs:
    """A batch of one: the newest ``max_history`` history steps (T) then K candidates.

    ``history_vectors`` (T', E) and ``candidate_vectors`` (K, E) are post embeddings (zeros
    for posts no longer indexed); ``profile`` (E,) is the member's vector, None if unknown.
    """
    keep = max(0, len(history) - config.max_history)
    history = history[keep:]
    posts = PostAttrs(history_posts.authors[keep:], history_posts.formats[keep:])
    steps, counter = history_features(history, posts, config)
    last_ts = history[-1].ts_ms if history else None
    candidates = candidate_features(candidate_posts, counter, last_ts, now_ms, device, config)
    vectors = np.concatenate([history_vectors[keep:], candidate_vectors])  # (L, E)
    member = np.zeros(config.embedding_dim, np.float32) if profile is None else profile
    return GRInputs(
        post_emb=torch.from_numpy(np.ascontiguousarray(vectors, np.float32))[None],
        action=_joined(steps.action, candidates.action),
        gap=_joined(steps.gap, candidates.gap),
        device=_joined(steps.device, candidates.device),
        affinity=_joined(steps.affinity, candidates.affinity),
        profile=torch.from_numpy(np.asarray(member, np.float32))[None],
        history_len=len(history),
    )


def _joined(history: np.ndarray, candidates: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([history, candidates]))[None]  # (1, L, ...)


@torch.inference_mode()
def score(
    model: GenerativeRecommender, inputs: GRInputs, impl: AttentionImpl = "auto"
) -> np.ndarray:
    """Task probabilities (K, N) of a batch-of-one request."""
    device = next(model.parameters()).device
    return model.score_candidates(inputs.to(device), impl)[0].float().cpu().numpy()


def combined_score(
    probs: np.ndarray, tasks: Sequence[str], weights: Mapping[str, float]
) -> np.ndarray:
    """``sum_task weight * p(task)`` per candidate: (K, N) -> (K,)."""
    w = np.array([weights.get(t, 0.0) for t in tasks], np.float32)
    return probs @ w


def one_per_row(inputs: GRInputs) -> GRInputs:
    """The same request as K rows of ``[history, candidate_k]``: what scoring each candidate
    separately computes (the baseline of the shared-context pass)."""
    t = inputs.history_len
    k = inputs.action.shape[1] - t

    def split(x: torch.Tensor) -> torch.Tensor:  # (1, T + K, ...) -> (K, T + 1, ...)
        history = x[:, :t].expand(k, t, *x.shape[2:])
        return torch.cat([history, x[0, t:, None]], dim=1)

    return GRInputs(
        post_emb=split(inputs.post_emb),
        action=split(inputs.action),
        gap=split(inputs.gap),
        device=split(inputs.device),
        affinity=split(inputs.affinity),
        profile=inputs.profile.expand(k, -1),
        history_len=t,
    )
