"""GR checkpoints: ``model.safetensors`` + ``gr_config.json`` (config, model version, the
embedding model it was trained against, evaluation) in one directory."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.errors import ModelLoadError
from models.gr.config import GRConfig
from models.gr.model import GenerativeRecommender

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "gr_config.json"


class GRCheckpoint(NamedTuple):
    """A loaded ranker and what it was trained on."""

    model: GenerativeRecommender
    model_version: str
    """``gr-<first 12 hex of the weights' sha256>``."""
    embedding_model_version: str
    """Post embeddings the ranker expects; serving refuses a different index model."""
    metadata: dict[str, Any]


def save_checkpoint(
    model: GenerativeRecommender,
    directory: Path,
    *,
    embedding_model_version: str,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Write the checkpoint atomically (temp dir, then rename); return its model version."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    save_file(state, tmp / WEIGHTS_FILE)
    version = "gr-" + hashlib.sha256((tmp / WEIGHTS_FILE).read_bytes()).hexdigest()[:12]
    card = {
        "model_version": version,
        "embedding_model_version": embedding_model_version,
        "config": model.config.to_dict(),
        **(metadata or {}),
    }
    (tmp / CONFIG_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    if directory.exists():
        old = directory.with_name(f".{directory.name}-old-{os.getpid()}")
        directory.rename(old)
        tmp.rename(directory)
        _remove_tree(old)
    else:
        tmp.rename(directory)
    return version


def load_checkpoint(directory: Path, device: torch.device | str = "cpu") -> GRCheckpoint:
    """Load a checkpoint written by `save_checkpoint`, in eval mode."""
    directory = Path(directory)
    try:
        card = json.loads((directory / CONFIG_FILE).read_text())
        config = GRConfig.from_dict(card.pop("config"))
        model = GenerativeRecommender(config)
        model.load_state_dict(load_file(directory / WEIGHTS_FILE, device="cpu"))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        raise ModelLoadError(
            f"cannot load a GR checkpoint from {directory}: {exc}; "
            "train one with `feedline train gr --out DIR`"
        ) from exc
    try:
        model.to(device).eval()
    except (RuntimeError, AssertionError) as exc:  # e.g. "cuda" on a machine without CUDA
        raise ModelLoadError(f"cannot move the GR checkpoint to {device}: {exc}") from exc
    return GRCheckpoint(model, card.pop("model_version"), card.pop("embedding_model_version"), card)


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
