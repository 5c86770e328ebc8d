"""Torch/transformers models: the dual encoder that embeds member and post prompts."""

from models.encoder import TextEncoder, default_model_path, model_version, pool
from models.errors import ModelError, ModelLoadError
from models.settings import EncoderSettings

__all__ = [
    "EncoderSettings",
    "ModelError",
    "ModelLoadError",
    "TextEncoder",
    "default_model_path",
    "model_version",
    "pool",
]
