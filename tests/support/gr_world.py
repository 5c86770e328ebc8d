"""A tiny world for GR training tests: members whose likes depend only on their history."""

from __future__ import annotations

import numpy as np

from models.gr.config import GRConfig
from models.gr.dataset import GRDataset, build_dataset
from models.gr.sequences import PostCatalog

CONFIG = GRConfig(embedding_dim=16, d_model=32, n_heads=4, dropout=0.0)
TOPICS, POSTS_PER_TOPIC = 6, 30


def tiny_world(seed: int = 0, members: int = 300, impressions: int = 40) -> GRDataset:
    """Members like on-topic posts 70% of the time, others 2%. Profiles are zeros, so only
    the history can tell a member's topic: cosine ranking has no signal, the GR must learn."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(TOPICS, 16))
    topic_of = np.repeat(np.arange(TOPICS), POSTS_PER_TOPIC)
    vectors = centroids[topic_of] + 0.3 * rng.normal(size=(len(topic_of), 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    post_ids = [f"p{i}" for i in range(len(topic_of))]
    rows: list[dict[str, object]] = []
    for m in range(members):
        topic, ts = int(rng.integers(TOPICS)), 0
        for post in rng.choice(len(post_ids), size=impressions, replace=False):
            ts += int(rng.integers(1_000, 100_000))
            on = topic_of[post] == topic
            rows.append(
                {
                    "member_id": f"m{m}",
                    "post_id": post_ids[post],
                    "action": "impression",
                    "ts_ms": ts,
                    "device": "mobile",
                }
            )
            if rng.random() < (0.7 if on else 0.02):
                rows.append(
                    {
                        "member_id": f"m{m}",
                        "post_id": post_ids[post],
                        "action": "like",
                        "ts_ms": ts + 500,
                        "device": "mobile",
                    }
                )
    catalog = PostCatalog(
        {p: i for i, p in enumerate(post_ids)},
        vectors,
        ["a"] * len(post_ids),
        ["text"] * len(post_ids),
    )
    return build_dataset(
        rows,
        catalog,
        {},
        CONFIG,
        holdout_fraction=0.25,
        embedding_model_version="emb-v1",
        source="tiny",
    )
