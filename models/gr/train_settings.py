"""Settings of `feedline train gr` (env prefix ``FEEDLINE_GR_TRAIN_``)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GRTrainSettings(BaseSettings):
    """Optimiser, schedule and hold-out of GR training."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_GR_TRAIN_", extra="ignore")

    epochs: int = Field(12, ge=1)
    batch_size: int = Field(8, ge=1, description="member windows per step")
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    holdout_fraction: float = Field(
        0.2, ge=0, lt=1, description="the last share of the logged time span held out for eval"
    )
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def torch_device(self) -> torch.device:
        """``auto`` is CUDA when present."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)
