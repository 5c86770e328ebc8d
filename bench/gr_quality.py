"""Ranking quality on the synthetic world: the trained GR vs cosine-only ranking.

Trains the GR (``GRTrainSettings`` defaults) on impressions before the hold-out split of a
seeded world, then ranks the held-out impressions with the GR's combined score and with
cosine(member vector, post vector), the retrieval score the feed uses without a ranker.
Member and post vectors come from the default encoder over prompts built only from events
before the split. Prints NDCG@10 (gain: positive engagement) and AUC per task; for cosine
``skip`` is scored by the negated similarity.

    python -m bench.gr_quality                       # 800 members, 1,000 posts, seed 7
    python -m bench.gr_quality --members 200 --seed 3
"""

from __future__ import annotations

import argparse
import math

from bench.common import emit
from feedline.gr_data import world_dataset
from feedline.world import WorldConfig, generate_world
from models.encoder import TextEncoder
from models.gr.config import GRConfig
from models.gr.train import train_gr
from models.gr.train_settings import GRTrainSettings
from models.settings import EncoderSettings

BENCH = "gr_quality"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--members", type=int, default=800)
    parser.add_argument("--posts", type=int, default=1_000)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    world = generate_world(WorldConfig(seed=args.seed, members=args.members, posts=args.posts))
    config = GRConfig()
    settings = GRTrainSettings()
    if args.epochs is not None:
        settings = settings.model_copy(update={"epochs": args.epochs})
    dataset = world_dataset(world, TextEncoder.load(EncoderSettings()), config, 0.2)
    result = train_gr(dataset, config, settings)
    train, held_out = dataset.impressions()
    cfg = {
        "seed": args.seed,
        "members": args.members,
        "posts": args.posts,
        "train_impressions": train,
        "heldout_impressions": held_out,
        "epochs": settings.epochs,
        "train_s": round(result.seconds, 1),
    }
    emit(BENCH, cfg, "ndcg_at_10", result.gr.ndcg_at_10, "ndcg", "cosine", result.cosine.ndcg_at_10)
    for task in config.tasks:
        gr, cosine = result.gr.auc[task], result.cosine.auc[task]
        if not (math.isnan(gr) or math.isnan(cosine)):
            emit(BENCH, cfg, f"auc_{task}", gr, "auc", "cosine", cosine)


if __name__ == "__main__":
    main()
