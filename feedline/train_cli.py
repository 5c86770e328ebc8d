"""``feedline train …``: train models on the synthetic world or on exported logs.

Example::

    feedline train gr --out .feedline/gr                     # on the synthetic world
    feedline export engagements --out engagements.parquet
    feedline train gr --out .feedline/gr --engagements engagements.parquet \\
        --snapshots .feedline/snapshots                      # on your own logs
    FEEDLINE_RANKER_CHECKPOINT=.feedline/gr feedline serve   # feeds ranked by the GR

Prints one JSON line: the model version, losses, and held-out AUC per task and NDCG@10 of
the GR beside cosine-only ranking of the same impressions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from models.gr.config import GRConfig
    from models.gr.dataset import GRDataset

train_app = typer.Typer(no_args_is_help=True, help="Train models.")


@train_app.callback()
def train_callback() -> None:
    """Train models."""  # keeps `gr` a sub-command


@train_app.command("gr")
def train_gr_command(
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="checkpoint directory")],
    engagements: Annotated[
        Path | None, typer.Option(help="Parquet from `feedline export engagements`")
    ] = None,
    snapshots: Annotated[
        Path | None, typer.Option(help="index snapshot dir whose newest snapshot has the vectors")
    ] = None,
    seed: Annotated[int, typer.Option(help="synthetic world seed (without --engagements)")] = 7,
    members: Annotated[int, typer.Option(help="synthetic world members")] = 800,
    posts: Annotated[int, typer.Option(help="synthetic world posts")] = 1000,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    d_model: Annotated[int, typer.Option(min=8)] = 64,
    layers: Annotated[int, typer.Option(min=1)] = 2,
    heads: Annotated[int, typer.Option(min=1)] = 4,
) -> None:
    """Train the GR ranker: multi-task BCE on impressions before the hold-out split, AdamW;
    evaluate per-task AUC and NDCG@10 on the held-out impressions."""
    from rich.progress import Progress

    from feedline.logs import log_effective_config
    from models.gr.checkpoint import save_checkpoint
    from models.gr.config import GRConfig
    from models.gr.train import train_gr
    from models.gr.train_settings import GRTrainSettings

    settings = GRTrainSettings()
    if epochs is not None:
        settings = settings.model_copy(update={"epochs": epochs})
    log_effective_config("train-gr", settings)
    if (engagements is None) != (snapshots is None):
        raise typer.BadParameter("give both --engagements and --snapshots, or neither")
    config = GRConfig(d_model=d_model, n_layers=layers, n_heads=heads)
    if engagements is not None and snapshots is not None:
        dataset = _log_dataset(engagements, snapshots, config, settings.holdout_fraction)
    else:
        dataset = _world_dataset(seed, members, posts, config, settings.holdout_fraction)
    with Progress(transient=True, console=_stderr_console()) as progress:
        bar = progress.add_task("training GR", total=settings.epochs)
        result = train_gr(dataset, config, settings, on_epoch=lambda _, loss: progress.advance(bar))
    train_impressions, held_out = dataset.impressions()
    version = save_checkpoint(
        result.model,
        out,
        embedding_model_version=dataset.embedding_model_version,
        metadata={"source": dataset.source, "eval": result.gr.as_dict()},
    )
    summary = {
        "model_version": version,
        "out": str(out),
        "source": dataset.source,
        "train_impressions": train_impressions,
        "heldout_impressions": held_out,
        "epochs": settings.epochs,
        "loss_first": round(result.epoch_losses[0], 4),
        "loss_last": round(result.epoch_losses[-1], 4),
        "train_s": round(result.seconds, 1),
        "gr": result.gr.as_dict(),
        "cosine": result.cosine.as_dict(),
    }
    sys.stdout.write(json.dumps(summary) + "\n")


def _world_dataset(
    seed: int, members: int, posts: int, config: GRConfig, holdout: float
) -> GRDataset:
    from feedline.gr_data import world_dataset
    from feedline.world import WorldConfig, generate_world
    from models.encoder import TextEncoder
    from models.settings import EncoderSettings

    authors = min(WorldConfig.authors, members, posts)  # small worlds: every member may post
    world = generate_world(WorldConfig(seed=seed, members=members, posts=posts, authors=authors))
    return world_dataset(world, TextEncoder.load(EncoderSettings()), config, holdout)


def _log_dataset(engagements: Path, snapshots: Path, config: GRConfig, holdout: float) -> GRDataset:
    from feedline.gr_data import log_dataset

    return log_dataset(engagements, snapshots, config, holdout)


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)
