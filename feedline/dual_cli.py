"""Dual-encoder commands: ``feedline world training-set``, ``feedline train dual-encoder``
and ``feedline eval retrieval``.

Example::

    feedline world training-set --out .feedline/train           # or: feedline export training-set
    feedline eval retrieval --data .feedline/train              # the packaged model, untrained
    feedline train dual-encoder --data .feedline/train --out .feedline/dual --hard-negatives 2
    feedline train dual-encoder --data .feedline/train --out .feedline/dual \
        --max-minutes 20 --max-length 128 --freeze-layers 4       # a CPU-sized run
    feedline eval retrieval --data .feedline/train --model .feedline/dual
    FEEDLINE_ENCODER_MODEL_PATH=.feedline/dual feedline serve   # or roll it out live

Each prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from models.dual.schedule import Schedule

if TYPE_CHECKING:
    from models.dual.train_settings import DualTrainSettings
    from models.dual.trainer import DualTrainResult
    from processors.prompts import PromptLibrary
    from schemas.training_set import TrainingSet

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate models.")

DataDir = Annotated[Path, typer.Option("--data", file_okay=False, help="training-set directory")]


@eval_app.callback()
def eval_callback() -> None:
    """Evaluate models."""  # keeps `retrieval` a sub-command


@eval_app.command("retrieval")
def eval_retrieval_command(
    data: DataDir,
    model: Annotated[
        Path | None, typer.Option(help="model directory (default: the packaged encoder)")
    ] = None,
) -> None:
    """Recall@10, recall@50, NDCG@10 and the popularity correlation on the time split."""
    from feedline.dual_eval import evaluate_retrieval
    from models.encoder import TextEncoder
    from models.settings import EncoderSettings
    from schemas.training_set import read_training_set

    training_set = read_training_set(data)
    encoder = TextEncoder.load(EncoderSettings(model_path=model))
    report = evaluate_retrieval(training_set, encoder)
    summary = {"model_version": encoder.model_version, "data": str(data), **report.as_dict()}
    sys.stdout.write(json.dumps(summary) + "\n")


def train_dual_encoder_command(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="model directory")],
    base: Annotated[
        Path | None, typer.Option(help="Hugging Face model directory to fine-tune")
    ] = None,
    hard_negatives: Annotated[int | None, typer.Option(min=0, max=8)] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    max_steps: Annotated[int | None, typer.Option(min=1)] = None,
    max_minutes: Annotated[
        float | None, typer.Option(min=0.0, help="stop after the step that used up this budget")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    learning_rate: Annotated[float | None, typer.Option(min=0.0)] = None,
    schedule: Annotated[
        Schedule | None, typer.Option(help="after warm-up: constant, or linear/cosine decay")
    ] = None,
    warmup_steps: Annotated[
        int | None, typer.Option(min=0, help="default: 10% of the planned steps, at most 50")
    ] = None,
    max_length: Annotated[int | None, typer.Option(min=8, help="tokens per prompt")] = None,
    freeze_layers: Annotated[
        int | None, typer.Option(min=0, help="freeze the embeddings and this many bottom layers")
    ] = None,
    learn_temperature: Annotated[bool | None, typer.Option()] = None,
    catalogue_negatives: Annotated[
        bool | None,
        typer.Option(help="every post is a negative of every query (a bank refreshed often)"),
    ] = None,
    validate_every: Annotated[int | None, typer.Option(min=1, help="steps")] = None,
    patience: Annotated[
        int | None, typer.Option(min=0, help="validations without improvement; 0: never stop")
    ] = None,
    validation_members: Annotated[int | None, typer.Option(min=1)] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    evaluate: Annotated[bool, typer.Option(help="evaluate before and after")] = True,
) -> None:
    """Fine-tune one shared encoder with InfoNCE (in-batch, easy and hard negatives).

    Unset options fall back to ``FEEDLINE_DUAL_TRAIN_*`` and then the defaults. Where the
    training set has a validation split, the model is validated before the first step, every
    ``--validate-every`` steps and at the end; training stops after ``--patience``
    validations without improvement and the best-scoring weights are saved. The last line of
    stdout is a JSON summary; the progress bar goes to stderr.
    """
    import torch

    from feedline.dual_validation import validation_for
    from feedline.logs import log_effective_config
    from models.dual.trainer import train_dual_encoder
    from models.dual.training_examples import example_sampler
    from schemas.training_set import read_training_set

    settings = _train_settings(
        base_model_path=base, hard_negatives=hard_negatives, epochs=epochs,
        max_steps=max_steps, max_minutes=max_minutes, batch_size=batch_size,
        learning_rate=learning_rate, schedule=schedule, warmup_steps=warmup_steps,
        max_length=max_length, freeze_layers=freeze_layers,
        learn_temperature=learn_temperature, catalogue_negatives=catalogue_negatives,
        validate_every=validate_every,
        patience=patience, validation_members=validation_members, progress=progress,
        seed=seed,
    )  # fmt: skip
    log_effective_config("train-dual-encoder", settings)
    training_set = read_training_set(data)
    before = _evaluate(training_set, settings.base_path()) if evaluate else None
    sampler = example_sampler(
        training_set,
        hard_negatives=settings.hard_negatives,
        easy_negatives=settings.easy_negatives,
    )
    validation = validation_for(
        training_set,
        members=settings.validation_members,
        seed=settings.seed,
        latest_weight=settings.latest_weight,
    )
    catalogue = training_set.posts.column("post_prompt").to_pylist()
    result = train_dual_encoder(sampler, settings, out, validation=validation, catalogue=catalogue)
    summary: dict[str, object] = {
        "model_version": result.model_version,
        "out": str(out),
        "examples": training_set.examples.num_rows,
        **_run_summary(result),
        "torch_threads": torch.get_num_threads(),
    }
    if before is not None:
        summary["before"] = before
        summary["after"] = _evaluate(training_set, out)
    sys.stdout.write(json.dumps(summary) + "\n")


def _train_settings(**options: object) -> DualTrainSettings:
    """``DualTrainSettings`` from the environment with the given (non-None) options on top,
    validated; an invalid combination is a ``typer.BadParameter``."""
    from pydantic import ValidationError

    from models.dual.train_settings import DualTrainSettings

    given = {name: value for name, value in options.items() if value is not None}
    try:
        return DualTrainSettings.model_validate({**DualTrainSettings().model_dump(), **given})
    except ValidationError as error:
        raise typer.BadParameter(str(error)) from error


def _run_summary(result: DualTrainResult) -> dict[str, object]:
    """The summary fields of a training run: steps, speed, why it stopped, validation."""
    return {
        "steps": result.steps,
        "planned_steps": result.planned_steps,
        "stopped_by": result.stopped_by,
        "train_s": round(result.seconds, 1),
        "s_per_step": round(result.seconds_per_step, 3),
        "validation_s": round(result.validation_seconds, 1),
        "loss_first": round(result.step_losses[0], 4),
        "loss_last": round(result.step_losses[-1], 4),
        "validation_name": result.validation_name,
        "validation": [[step, round(score, 4)] for step, score in result.validation],
        "best_step": result.best_step,
        "best_score": None if result.best_score is None else round(result.best_score, 4),
        "saved_step": result.saved_step,
    }


def world_training_set_command(
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="directory to write")],
    seed: int = 7,
    members: int = 200,
    posts: int = 1000,
    history: Annotated[
        str, typer.Option(help="positive: engaged posts only (published); all: every impression")
    ] = "positive",
    numbers: Annotated[str, typer.Option(help="percentile tokens, or raw counts")] = "percentile",
) -> None:
    """Build a training set from the synthetic world (time-aware prompts, hard negatives)."""
    from feedline.dual_data import world_training_set
    from feedline.world import WorldConfig, generate_world
    from schemas.training_set import write_training_set

    if history not in ("positive", "all") or numbers not in ("percentile", "raw"):
        raise typer.BadParameter("--history is positive|all; --numbers is percentile|raw")
    authors = min(WorldConfig.authors, members, posts)
    world = generate_world(WorldConfig(seed=seed, members=members, posts=posts, authors=authors))
    training_set = world_training_set(
        world,
        default_library(),
        history=_history(history),
        numbers=_numbers(numbers),
    )
    write_training_set(out, training_set)
    summary = {"out": str(out), **training_set.manifest.counts}
    sys.stdout.write(json.dumps(summary) + "\n")


def default_library() -> PromptLibrary:
    """The prompt library with the default settings and tokenizer."""
    from models.encoder import load_tokenizer
    from models.settings import EncoderSettings
    from processors.prompts import PromptLibrary
    from processors.token_budget import TokenMeter
    from streams.prompt_settings import PromptWorkerSettings

    tokenizer, _ = load_tokenizer(EncoderSettings())
    return PromptLibrary(PromptWorkerSettings().prompt_config(), TokenMeter(tokenizer))


def _history(value: str) -> Literal["positive", "all"]:
    return "all" if value == "all" else "positive"


def _numbers(value: str) -> Literal["percentile", "raw"]:
    return "raw" if value == "raw" else "percentile"


def _evaluate(training_set: TrainingSet, model: Path) -> dict[str, float | int]:
    from feedline.dual_eval import evaluate_retrieval
    from models.encoder import TextEncoder
    from models.settings import EncoderSettings

    encoder = TextEncoder.load(EncoderSettings(model_path=model))
    return evaluate_retrieval(training_set, encoder).as_dict()
