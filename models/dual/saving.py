"""Write a fine-tuned dual encoder: weights (safetensors), tokenizer and model card, atomically,
under a version derived from the weights.

Example::

    version = save_dual_encoder(model, tokenizer, out_dir, base_path=base, card={"steps": 10})
    # "all-MiniLM-L6-v2-ft-<first 12 hex of the weights' sha256>"
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.encoder import MODEL_CARD_FILE, default_model_path


def save_dual_encoder(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    *,
    base_path: Path,
    card: dict[str, Any],
) -> str:
    """Write weights (safetensors), tokenizer and ``feedline_model.json`` to ``out_dir``
    atomically (a temp dir beside it, then a rename); return the model version.

    The saved ``config.json`` keeps the base's ``architectures``: ``AutoModel`` saves a
    decoder LLM as its bare ``…Model``, and ``TextEncoder.load`` would then no longer see a
    decoder and would pick mean instead of last-token pooling.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _keep_architectures(base_path, tmp)
        base_name = _base_name(base_path)
        version = f"{base_name}-ft-{_weights_digest(tmp)[:12]}"
        full = {"model_version": version, "base_name": base_name, **card}
        (tmp / MODEL_CARD_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        _make_readable(tmp)
        _replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return version


def _keep_architectures(base_path: Path, saved: Path) -> None:
    architectures = json.loads((base_path / "config.json").read_text()).get("architectures")
    if not architectures:
        return
    config = json.loads((saved / "config.json").read_text())
    config["architectures"] = architectures
    (saved / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _base_name(base_path: Path) -> str:
    """The bundled MiniLM's name, a fine-tuned base's own base name, else the directory's."""
    card = base_path / MODEL_CARD_FILE
    if card.exists():
        data = json.loads(card.read_text())
        return str(data.get("base_name", data["model_version"]))
    return "all-MiniLM-L6-v2" if base_path == default_model_path() else base_path.name


def _weights_digest(directory: Path) -> str:
    """sha256 over every safetensors file (one, or the shards of a large model), by name."""
    digest = hashlib.sha256()
    for file in sorted(directory.glob("*.safetensors")):
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def _make_readable(directory: Path) -> None:
    """``mkdtemp`` and the safetensors writer leave owner-only modes; the embedding workers
    and the query service may run as other users."""
    directory.chmod(0o755)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _replace(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        tmp.rename(out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-old-", dir=out_dir.parent))
    out_dir.rename(old / out_dir.name)
    tmp.rename(out_dir)
    shutil.rmtree(old)
