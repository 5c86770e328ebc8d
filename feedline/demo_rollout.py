"""The demo's rollout step: fine-tune the dual encoder on the demo's own topics, then roll it
out to the running query service without downtime.

The loop a user runs on their own data: ``feedline export training-set`` (Kafka to Parquet),
``feedline train dual-encoder``, then ``POST /v1/admin/rollout``. While the shadow index
builds, the demo keeps asking feeds and checks every answer came from one model: the old one
until the switch, the new one after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from feedline.world import World
from models.dual.train_settings import DualTrainSettings
from models.dual.trainer import train_dual_encoder
from models.dual.training_examples import example_sampler
from schemas.training_set import read_training_set
from service.client import QueryClient
from streams.settings import KafkaSettings
from streams.training_export import export_training_set

Wait = Callable[[Callable[[], bool], str], None]
TRAIN_STEPS = 3  # a demonstration of the loop on CPU, not a useful amount of training


def fine_tune_and_roll_out(
    console: Console,
    kafka: KafkaSettings,
    workdir: Path,
    client: QueryClient,
    world: World,
    wait: Wait,
) -> dict[str, Any]:
    """Export, train a few steps, roll out, and report timings and the versions served."""
    export_training_set(kafka, workdir / "train")
    training_set = read_training_set(workdir / "train")
    console.print(
        f"training the dual encoder on {training_set.examples.num_rows} examples "
        f"({TRAIN_STEPS} steps)…"
    )
    settings = DualTrainSettings(
        max_steps=TRAIN_STEPS, batch_size=8, warmup_steps=1, schedule="constant", progress=False
    )
    sampler = example_sampler(training_set, hard_negatives=1, easy_negatives=1)
    trained = train_dual_encoder(sampler, settings, workdir / "dual")
    old_version = client.stats().model_version
    started = time.monotonic()
    client.start_rollout(str(trained.out_dir))
    member_ids = [m["member_id"] for m in world.members]
    versions: list[str] = []

    def switched() -> bool:
        feed = client.feed(member_ids[len(versions) % len(member_ids)], k=10)
        versions.append(feed.model_version)
        status = client.rollout_status()
        if status["state"] == "failed":
            raise RuntimeError(f"the rollout failed: {status['error']}")
        return bool(status["state"] == "switched")

    wait(switched, "the rollout to switch")
    status = client.rollout_status()
    rollout_s = time.monotonic() - started
    entities = sum(e["embedded"] for e in status["entities"].values())
    relevance = [
        world.relevance_at_k(m, [i.post_id for i in client.feed(m, k=10).items]) for m in member_ids
    ]
    return {
        "dual_version": trained.model_version,
        "dual_train_s": round(trained.seconds, 1),
        "rollout_s": round(rollout_s, 1),
        "rollout_entities": entities,
        "rollout_entities_per_s": round(entities / max(status["seconds"], 1e-9), 1),
        "rollout_feeds_during": len(versions),
        "rollout_versions_in_order": _in_order(versions, old_version, trained.model_version),
        "relevance_at_10_after_rollout": round(float(np.mean(relevance)), 4),
    }


def _in_order(versions: list[str], old: str, new: str) -> bool:
    """True when the feeds answered with the old model, then only the new one."""
    if any(v not in (old, new) for v in versions):
        return False
    first_new = versions.index(new) if new in versions else len(versions)
    return all(v == new for v in versions[first_new:])
