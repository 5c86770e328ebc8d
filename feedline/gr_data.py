"""Where GR training data comes from: the synthetic world, or exported logs + a snapshot.

- World: posts and members are embedded with the encoder, from prompts built only from what
  happened before the hold-out split (post percentiles from earlier engagement counts, member
  history of earlier positive engagements), so held-out labels leak into no feature.
- Logs: engagements exported from Kafka (`feedline export engagements`) and the post and
  member vectors of the newest index snapshot (what the service serves with). Member vectors
  there are current, so they may include held-out engagements: treat that evaluation as
  optimistic for both the GR and the cosine baseline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa

from feedline.world import World
from feedline.world_prompts import member_inputs, post_inputs
from index_store.snapshots import SnapshotStore
from models.encoder import TextEncoder, load_tokenizer
from models.gr.config import GRConfig
from models.gr.dataset import DatasetError, GRDataset, build_dataset, split_time
from models.gr.sequences import PostCatalog
from processors.prompts import PromptLibrary
from processors.token_budget import TokenMeter
from schemas.engagement_table import read_engagements
from streams.prompt_settings import PromptWorkerSettings


def world_dataset(
    world: World, encoder: TextEncoder, config: GRConfig, holdout_fraction: float
) -> GRDataset:
    """The world's engagements as GR sequences, with leak-free post and member embeddings."""
    split = split_time((e["ts_ms"] for e in world.engagements), holdout_fraction)
    before = dataclasses.replace(
        world, engagements=[e for e in world.engagements if e["ts_ms"] < split]
    )
    tokenizer, _ = load_tokenizer(encoder.settings)
    library = PromptLibrary(PromptWorkerSettings().prompt_config(), TokenMeter(tokenizer))
    posts = post_inputs(before)
    members = member_inputs(before, library)
    post_ids = [p["post_id"] for p in world.posts]
    post_vectors = encoder.encode([library.render_post(*posts[p]) for p in post_ids])
    member_ids = [m["member_id"] for m in world.members]
    member_vectors = encoder.encode([library.render_member(*members[m]) for m in member_ids])
    catalog = PostCatalog(
        rows={p: i for i, p in enumerate(post_ids)},
        embeddings=np.ascontiguousarray(post_vectors, np.float32),
        authors=[p["author_id"] for p in world.posts],
        formats=[p["format"] for p in world.posts],
    )
    return build_dataset(
        world.engagements,
        catalog,
        dict(zip(member_ids, member_vectors, strict=True)),
        config,
        holdout_fraction=holdout_fraction,
        embedding_model_version=encoder.model_version,
        source=f"world(seed={world.config.seed}, members={world.config.members})",
    )


def log_dataset(
    engagements: Path, snapshots: Path, config: GRConfig, holdout_fraction: float
) -> GRDataset:
    """Exported engagements with the vectors of the newest snapshot under ``snapshots``."""
    snapshot = SnapshotStore(snapshots, keep=1_000_000).latest()
    if snapshot is None:
        raise DatasetError(
            f"no complete index snapshot under {snapshots}: run the query service with "
            "snapshots enabled (FEEDLINE_INDEX_SNAPSHOT_DIR) first"
        )
    posts, members = snapshot.posts(), snapshot.members()
    catalog = PostCatalog(
        rows={p: i for i, p in enumerate(posts.column("post_id").to_pylist())},
        embeddings=_matrix(posts.column("embedding")),
        authors=posts.column("author_id").to_pylist(),
        formats=posts.column("format").to_pylist(),
    )
    profiles = dict(
        zip(
            members.column("member_id").to_pylist(),
            _matrix(members.column("embedding")),
            strict=True,
        )
    )
    return build_dataset(
        read_engagements(engagements).to_pylist(),
        catalog,
        profiles,
        config,
        holdout_fraction=holdout_fraction,
        embedding_model_version=snapshot.manifest.model_version,
        source=f"{engagements} + {snapshot.path.name}",
    )


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size-list<float32> column as a (rows, dim) float32 matrix."""
    flat = column.combine_chunks()
    dim = flat.type.list_size
    return np.asarray(flat.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
