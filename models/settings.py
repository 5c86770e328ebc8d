"""Which embedding model to run and how (env prefix ``FEEDLINE_ENCODER_``).

The embedding worker and the query service read the same settings: a query embedded with a
different model than the index would be meaningless, and the index refuses such vectors.

``runtime`` picks what runs the forward pass (``models.onnx_runtime`` has the details):
``torch`` (the default; CPU or CUDA), ``onnx`` (ONNX Runtime on CPU, fp32: the same
embeddings and ``model_version`` as torch, within float error) or ``onnx-int8`` (ONNX Runtime,
int8 weights: faster, cosine about 0.99 to fp32, so its ``model_version`` gains ``+int8`` and
its vectors do not mix with fp32 ones). Threads on a machine with C usable cores: one
embedding worker with ``onnx_threads`` (or ``torch_threads``) = C (the default, 0), or W
workers with C/W each. ``torch_dtype`` sets the torch runtime's compute precision (autocast):
on CPUs with AMX (Xeon Sapphire Rapids and later) bfloat16 embeds 2.2x faster than float32 at
cosine 0.99999, the same embeddings within the error between two float32 implementations, so
it keeps the ``model_version``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Pooling = Literal["auto", "mean", "last_token"]
Device = Literal["auto", "cpu", "cuda"]
Runtime = Literal["torch", "onnx", "onnx-int8"]
TorchDtype = Literal["auto", "float32", "bfloat16", "float16"]
DEFAULT_ONNX_CACHE = "~/.cache/feedline/onnx"


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
    torch_dtype: TorchDtype = Field(
        "auto",
        description="compute precision of the torch runtime (autocast); vectors come out "
        "float32 either way. auto: float16 on CUDA, bfloat16 on CPUs with AMX-BF16 (2.2x "
        "float32 there, cosine 0.99999), else float32. The model_version does not change",
    )
    runtime: Runtime = Field(
        "torch",
        description="torch; onnx (ONNX Runtime fp32, CPU, same model_version); onnx-int8 "
        "(int8 weights, CPU, model_version + '+int8'). ONNX needs a native BERT encoder",
    )
    onnx_threads: int = Field(
        0,
        ge=0,
        description="ONNX Runtime intra-op threads; 0 = the usable cores (sched_getaffinity). "
        "W workers on C cores: C/W each",
    )
    onnx_cache_dir: Path | None = Field(
        None,
        description=f"where exported ONNX files are cached, one folder per model_version; "
        f"default (None): {DEFAULT_ONNX_CACHE}",
    )

    def onnx_cache(self) -> Path:
        """``onnx_cache_dir``, or the default under the user's home, resolved now."""
        return (self.onnx_cache_dir or Path(DEFAULT_ONNX_CACHE)).expanduser()
