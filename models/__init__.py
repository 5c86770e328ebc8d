"""Torch/transformers models: the dual encoder that embeds member and post prompts.

Names are imported on first use (PEP 562), so ``models.settings`` or ``models.prompt_tokenizer``
load without torch: the prompt processor starts seconds sooner.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.encoder import TextEncoder, default_model_path, model_version, pool
    from models.errors import ModelError, ModelLoadError
    from models.settings import EncoderSettings

_HOMES = {
    "EncoderSettings": "models.settings",
    "ModelError": "models.errors",
    "ModelLoadError": "models.errors",
    "TextEncoder": "models.encoder",
    "default_model_path": "models.encoder",
    "model_version": "models.encoder",
    "pool": "models.encoder",
}
__all__ = [
    "EncoderSettings",
    "ModelError",
    "ModelLoadError",
    "TextEncoder",
    "default_model_path",
    "model_version",
    "pool",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
