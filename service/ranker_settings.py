"""The query service's GR ranker (env prefix ``FEEDLINE_RANKER_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RankerSettings(BaseSettings):
    """Which GR checkpoint ranks feeds, and the limits of ranking requests."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_RANKER_", extra="ignore")

    checkpoint: Path | None = Field(
        None, description="directory written by `feedline train gr`; unset: retrieval order"
    )
    feed_candidates: int = Field(500, ge=1, description="posts retrieved before ranking")
    max_candidates: int = Field(1_000, ge=1, description="longer /v1/rank lists get 413")
    history_steps: int = Field(1_000, ge=1, description="engagements kept per member")
    device: Literal["cpu", "cuda"] = "cpu"
    attention: Literal["auto", "sdpa", "flex"] = "auto"
