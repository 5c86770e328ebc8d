"""Which embedding model to run and how (env prefix ``FEEDLINE_ENCODER_``).

The embedding worker and the query service read the same settings: a query embedded with a
different model than the index would be meaningless, and the index refuses such vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Pooling = Literal["auto", "mean", "last_token"]
Device = Literal["auto", "cpu", "cuda"]


class EncoderSettings(BaseSettings):
    """The dual encoder: one model embeds member and post prompts into one space."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_ENCODER_", extra="ignore")

    model_path: Path | None = Field(
        None, description="a Hugging Face model directory; default: bundled all-MiniLM-L6-v2"
    )
    pooling: Pooling = Field("auto", description="auto: mean for encoders, last token for LLMs")
    max_length: int = Field(256, ge=8, le=32_768, description="tokens per prompt (truncation)")
    batch_max_tokens: int = Field(8_192, ge=64, description="padded tokens per forward pass")
    batch_max_items: int = Field(64, ge=1)
    percentile_tokens: bool = Field(
        True, description="register <view_pct>…</view_pct> wrappers as special tokens"
    )
    device: Device = "auto"
    torch_threads: int = Field(0, ge=0, description="CPU threads for torch; 0 = torch default")
