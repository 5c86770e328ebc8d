"""The demo's ranking step: train the GR on the demo's own logs, restart the query service
with it, and compare GR-ranked feeds with retrieval-order feeds.

This is the loop a user runs on their own data: ``feedline export engagements`` (Kafka to
Parquet), ``feedline train gr --engagements … --snapshots …`` (post and member vectors from
the index snapshot), then ``FEEDLINE_RANKER_CHECKPOINT`` for the service.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from feedline.demo_analytics import restart_service
from feedline.gr_data import log_dataset
from feedline.processes import RoleProcess
from feedline.world import World
from models.gr.checkpoint import save_checkpoint
from models.gr.config import GRConfig
from models.gr.train import train_gr
from models.gr.train_settings import GRTrainSettings
from service.client import QueryClient
from streams.engagement_export import export_engagements
from streams.settings import KafkaSettings

Wait = Callable[[Callable[[], bool], str], None]


def train_and_rank(
    console: Console,
    kafka: KafkaSettings,
    workdir: Path,
    serve: RoleProcess,
    client: QueryClient,
    world: World,
    wait: Wait,
) -> dict[str, Any]:
    """Export, train, restart with the checkpoint, and score every member's ranked feed."""
    engagements = workdir / "engagements.parquet"
    exported = export_engagements(kafka, engagements)
    dataset = log_dataset(engagements, workdir / "snapshots", GRConfig(), holdout_fraction=0.2)
    console.print(f"exported {exported.rows} engagements; training the GR ranker…")
    result = train_gr(dataset, GRConfig(), GRTrainSettings())
    checkpoint = workdir / "gr"
    version = save_checkpoint(
        result.model, checkpoint, embedding_model_version=dataset.embedding_model_version
    )
    serve.env["FEEDLINE_RANKER_CHECKPOINT"] = str(checkpoint)
    restart_service(serve, client, wait)
    relevance, latencies, rankings = [], [], set()
    for member in world.members:
        started = time.perf_counter()
        feed = client.feed(member["member_id"], k=10)
        latencies.append(time.perf_counter() - started)
        rankings.add(feed.ranking)
        relevance.append(world.relevance_at_k(member["member_id"], [i.post_id for i in feed.items]))
    return {
        "gr_version": version,
        "gr_train_s": round(result.seconds, 1),
        "gr_heldout_ndcg_at_10": round(result.gr.ndcg_at_10, 4),
        "cosine_heldout_ndcg_at_10": round(result.cosine.ndcg_at_10, 4),
        "gr_ranking": "/".join(sorted(rankings)),
        "gr_relevance_at_10": round(float(np.mean(relevance)), 4),
        "gr_feed_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
        "gr_feed_p99_ms": round(1000 * float(np.percentile(latencies, 99)), 1),
    }
