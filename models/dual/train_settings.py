"""Settings of dual-encoder fine-tuning (env prefix ``FEEDLINE_DUAL_TRAIN_``).

Example::

    DualTrainSettings(max_minutes=20, freeze_layers=4, max_length=128)  # a CPU-sized run
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.dual.loss import MAX_TEMPERATURE, MIN_TEMPERATURE
from models.dual.schedule import Schedule, default_warmup
from models.encoder import default_model_path
from models.settings import Device, Pooling


class DualTrainSettings(BaseSettings):
    """Base model, negatives, optimiser, schedule, budget and validation of InfoNCE
    fine-tuning."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_DUAL_TRAIN_", extra="ignore")

    base_model_path: Path | None = Field(
        None, description="a Hugging Face model directory; default: bundled all-MiniLM-L6-v2"
    )
    pooling: Pooling = Field("auto", description="auto: mean for encoders, last token for LLMs")
    percentile_tokens: bool = Field(
        True, description="register <view_pct>…</view_pct> wrappers as trainable special tokens"
    )
    max_length: int = Field(256, ge=8, le=32_768, description="tokens per prompt (truncation)")
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=1, description="queries per step")
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps")
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="stop after the step during which this much wall time (validation "
        "included) has passed since the first validation or step; the final validation "
        "still runs",
    )
    hard_negatives: int = Field(
        1, ge=0, le=8, description="shown-not-engaged posts per query (paper: 1 or 2 help)"
    )
    easy_negatives: int = Field(1, ge=0, le=64, description="random unseen posts per query")
    catalogue_negatives: bool = Field(
        False,
        description="score every query against the whole catalogue each step (embeddings "
        "refreshed every catalogue_refresh_every steps, no gradient through them), as full "
        "ranking does; needs the catalogue's prompts",
    )
    catalogue_refresh_every: int = Field(
        40, ge=1, description="steps between re-embeddings of the catalogue negatives"
    )
    latest_weight: float = Field(
        0.0,
        ge=0,
        le=100,
        description="train the query the service serves with FEEDLINE_SERVICE_LATEST_WEIGHT: "
        "each member prompt's vector plus this weight times the vector of the member's "
        "previous positive, embedded in the same step",
    )
    learning_rate: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    schedule: Schedule = Field(
        "linear", description="after warm-up: constant, or linear/cosine decay to 0 at the end"
    )
    warmup_steps: int | None = Field(
        None, ge=0, description="linear warm-up steps; default: 10% of the planned steps, ≤ 50"
    )
    grad_clip: float = Field(1.0, gt=0)
    temperature: float = Field(0.05, ge=MIN_TEMPERATURE, le=MAX_TEMPERATURE)
    learn_temperature: bool = False
    temperature_learning_rate: float = Field(
        1e-3,
        gt=0,
        description="for log τ when learned; the encoder's rate would barely move it",
    )
    validate_every: int = Field(
        50, ge=1, description="steps between validations (also before the first and at the end)"
    )
    patience: int = Field(
        3, ge=0, description="validations without improvement before stopping; 0: never"
    )
    validation_members: int = Field(500, ge=1, description="members the validation scores")
    freeze_layers: int = Field(
        0,
        ge=0,
        description="freeze the input embeddings and this many bottom layers (the percentile "
        "token rows still learn)",
    )
    progress: bool = Field(True, description="a progress bar with ETA on stderr")
    seed: int = 0
    device: Device = "auto"
    bf16: bool = Field(True, description="bf16 autocast of the forward pass on CUDA")
    gradient_checkpointing: bool | None = Field(
        None, description="recompute activations in backward; default: on CUDA only"
    )

    def base_path(self) -> Path:
        """The base model directory (the bundled MiniLM when unset)."""
        return self.base_model_path or default_model_path()

    def warmup(self, planned_steps: int) -> int:
        """``warmup_steps``, else 10% of ``planned_steps`` capped at 50."""
        if self.warmup_steps is None:
            return default_warmup(planned_steps)
        return self.warmup_steps

    def torch_device(self) -> torch.device:
        """``auto`` is CUDA when present."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def use_gradient_checkpointing(self) -> bool:
        """The explicit choice, else on for CUDA."""
        if self.gradient_checkpointing is None:
            return self.torch_device().type == "cuda"
        return self.gradient_checkpointing
