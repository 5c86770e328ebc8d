"""The query service (env prefix ``FEEDLINE_SERVICE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Where the HTTP API listens and the limits it enforces."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_SERVICE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65_535)
    max_k: int = Field(1_000, ge=1, description="largest k a request may ask for")
    max_text_chars: int = Field(10_000, ge=1, description="longer query text gets 413")
    max_excluded_posts: int = Field(10_000, ge=0, description="longer exclude lists get 413")
    latest_weight: float = Field(
        0.0,
        ge=0,
        le=100,
        description="member feeds query with the member's vector plus the vector of the post "
        "they engaged with last (a positive action) at this weight "
        "(index_store.member_query); 0: the member's vector alone",
    )
    log_level: str = "warning"
