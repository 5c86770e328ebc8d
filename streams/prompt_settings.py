"""Settings of the prompt processor role (env prefix ``FEEDLINE_PROMPTS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from processors.percentiles import DEFAULT_K
from processors.prompts import PromptConfig
from processors.reembed import POSITIVE_ACTIONS, ReembedPolicy
from schemas import Action


class PromptWorkerSettings(BaseSettings):
    """Faust app, prompt library, percentile sketches and re-embedding policy."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_PROMPTS_", extra="ignore")

    app_id: str = Field("feedline-prompts", description="Faust app id = consumer group id")
    data_dir: Path = Field(
        Path(".feedline/prompts"),
        description="local table state (one directory per worker process; safe to delete)",
    )
    store: Literal["rocksdb", "memory"] = Field(
        "rocksdb",
        description="table store: rocksdb keeps state on disk, so a restart reads only the "
        "changelog written since; memory replays the whole changelog on every start",
    )
    instance_id: str | None = Field(
        None,
        description="static group membership (unique per worker, stable across restarts, e.g. "
        "the pod name): a restarted worker takes its partitions back without a rebalance",
    )
    standby_replicas: int = Field(
        1, ge=0, description="other workers that keep a warm copy of each table partition"
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65_535, description="0: no /metrics server")
    log_level: str = "WARNING"
    token_budget: int = Field(256, ge=64, description="tokens per prompt, special tokens included")
    history_in_prompt: int = Field(50, ge=0, description="engaged posts listed in a member prompt")
    summary_chars: int = Field(
        160, ge=20, le=2_000, description="characters of each engaged post in a member prompt"
    )
    latest_line: bool = Field(
        False, description="name the newest engaged post on its own line of a member prompt"
    )
    history_kept: int = Field(1_000, ge=1, description="positive engagements kept per member")
    negatives_kept: int = Field(200, ge=0, description="hard-negative impressions kept per member")
    positive_actions: frozenset[Action] = POSITIVE_ACTIONS
    bucket_step: int = Field(10, ge=1, le=100, description="percentile points that re-embed a post")
    post_min_interval_s: float = Field(60.0, ge=0)
    member_debounce_s: float = Field(5.0, ge=0)
    sketch_k: int = Field(DEFAULT_K, ge=8, description="KLL accuracy parameter")
    sketch_refresh_every: int = Field(1_000, ge=1, description="most changes between rebuilds")
    session_timeout_s: float = Field(
        20.0,
        ge=6,
        le=90,
        description="a worker not heard from this long loses its partitions (faust's 60 s "
        "default stalls the group that long after a kill -9)",
    )
    commit_interval_s: float = Field(
        2.0, gt=0, description="how often processed offsets are committed"
    )
    producer_linger_s: float = Field(
        0.005,
        ge=0,
        le=1,
        description="how long the producer waits to fill a batch before sending (faust's "
        "producer_linger; its default 0 sends a request per record: prompts, bundles and every "
        "table changelog write). 5 ms, like feedline's other producers",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description="the worker's event loop: uvloop (libuv, in C), or Python's own asyncio "
        "loop; faust supports both",
    )
    delivery_timeout_s: float = Field(
        300.0, gt=0, description="longest wait for sends before a commit; then the worker stops"
    )
    stall_s: float = Field(
        20.0,
        gt=0,
        description="a partition with records to read that delivered none this long is "
        "fetched again from its next expected offset",
    )
    stall_check_s: float = Field(5.0, gt=0, description="how often stalled partitions are sought")
    batch_max: int = Field(
        500,
        ge=1,
        description="most records an agent handles as one batch (what is already fetched, "
        "never waited for); the batch's table writes reach each key, and its changelog, once "
        "(1: record by record)",
    )
    post_linger_s: float = Field(
        0.005,
        ge=0,
        le=1,
        description="how long the post side waits, once, for more records when its batch is "
        "not full: longer batches send the engagements they forward in fewer bundles "
        "(0: never waits)",
    )
    table_cache_keys: int = Field(
        1_000,
        ge=0,
        description="values each table keeps decoded in memory across batches (the most "
        "recently used keys; a member's history can be ~100 KB at history_kept=1000)",
    )

    def prompt_config(self) -> PromptConfig:
        """What shapes prompt text (hashed into ``prompt_version``)."""
        return PromptConfig(
            token_budget=self.token_budget,
            history_in_prompt=self.history_in_prompt,
            summary_chars=self.summary_chars,
            latest_line=self.latest_line,
            sketch_k=self.sketch_k,
        )

    def reembed_policy(self) -> ReembedPolicy:
        """When posts and members are embedded again."""
        return ReembedPolicy(
            bucket_step=self.bucket_step,
            post_min_interval_ms=int(self.post_min_interval_s * 1000),
            member_debounce_ms=int(self.member_debounce_s * 1000),
            positive_actions=self.positive_actions,
            history_kept=self.history_kept,
            negatives_kept=self.negatives_kept,
        )

    @property
    def tick_interval_s(self) -> float:
        """How often held-back member changes are checked (half the debounce, at least 0.5 s)."""
        return max(0.5, self.member_debounce_s / 2)
