"""The index store (env prefix ``FEEDLINE_INDEX_``): backend choice, its knobs, snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BackendName = Literal["auto", "flat", "ivf", "hnsw", "torch"]


class IndexSettings(BaseSettings):
    """Which kNN backend holds the post vectors, how it is tuned, and how it is snapshotted.

    ``backend="auto"`` picks the exact torch scan when CUDA is present, else FAISS flat.
    """

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_INDEX_", extra="ignore")

    backend: BackendName = "auto"
    ivf_nlist: int = Field(1024, ge=1, description="IVF inverted lists (clusters)")
    ivf_nprobe: int = Field(16, ge=1, description="IVF lists scanned per query")
    ivf_train_size: int = Field(
        0,
        ge=0,
        description="vectors held exactly before IVF trains on them (0: 39 x nlist)",
    )
    hnsw_m: int = Field(32, ge=2, description="HNSW links per node")
    hnsw_ef_construction: int = Field(80, ge=1)
    hnsw_ef_search: int = Field(128, ge=1)
    hnsw_rebuild_fraction: float = Field(
        0.2, gt=0, le=1, description="rebuild HNSW once tombstones reach this share of nodes"
    )
    torch_device: str = Field("cuda", description="device of the torch scan backend")
    torch_dtype: Literal["float32", "float16", "bfloat16"] = "float16"
    search_threads: int = Field(
        0,
        ge=0,
        description="FAISS threads per single-query search, in the querying thread only; "
        "0 = auto: 1 for ivf and hnsw (a probe is too small to share, and idle workers spin "
        "after it), FAISS's default (every core) for flat (a full scan is bound by memory "
        "bandwidth, and two cores scan 200k posts in 36 ms instead of 60)",
    )
    subset_scan_max: int = Field(
        20_000,
        ge=0,
        description="filters matching at most this many posts are answered by an exact scan "
        "of just those posts",
    )
    subset_scan_fraction: float = Field(
        0.02,
        ge=0,
        le=1,
        description="... and at most this share of the index (gathering a vector costs about "
        "as much as scanning 30 in place)",
    )
    snapshot_dir: Path = Field(Path(".feedline/snapshots"), description="where snapshots go")
    snapshot_interval_s: float = Field(60.0, gt=0, description="seconds between snapshots")
    snapshot_keep: int = Field(3, ge=1, description="snapshots kept; older ones are deleted")
    snapshots_enabled: bool = True
    consumer_group: str = Field(
        "feedline-index", description="group the index commits snapshot-covered offsets to"
    )

    @property
    def ivf_train_min(self) -> int:
        """Vectors needed before the IVF backend trains its clusters."""
        return self.ivf_train_size or 39 * self.ivf_nlist
