"""The encoder's forward pass on ONNX Runtime (CPU), for ``EncoderSettings.runtime`` ``onnx``
and ``onnx-int8``.

- ``torch``: ``models.bert.BertEncoder`` (or transformers) on torch, CPU or CUDA.
- ``onnx``: the same module exported to ONNX (``models.onnx_export``) in fp32, run by an
  ``onnxruntime.InferenceSession`` on ``CPUExecutionProvider`` with all graph optimisations
  (fused LayerNorm, GELU, attention). Same embeddings as torch within float error (cosine
  ≥ 0.9999), so the same ``model_version``.
- ``onnx-int8``: int8 weights (dynamic quantisation); faster on CPU, cosine about 0.99 to fp32,
  so ``model_version`` gains ``+int8`` and the index keeps its vectors apart from fp32 ones.

The graph pools and normalises itself: a batch goes in as int64 ids (B, T) and comes out as
float32 unit rows (B, D). Tokenisation and token-budget batching stay in ``TextEncoder``, with
passes capped at ``CPU_BATCH_MAX_TOKENS`` padded tokens (below ``batch_max_tokens``, which is
sized for GPUs): on CPU a pass of 1k tokens already keeps the matmuls at full speed (its
activations stay in cache), and smaller passes group prompts of closer lengths, so less of the
work is padding. Measured on the synthetic world's prompts, int8, 2 cores: 1024 tokens gave
18k tokens/s, 2048 15k, 4096 13.7k (512-768 the same as 1024); padding 2% against 14% at 8192.

Threads: ``onnx_threads`` intra-op threads (0 = the usable cores). On a machine with C cores
run one embedding worker with C threads, or W workers with C/W threads each; more threads than
cores only make them wait on each other.

Example::

    model = OnnxModel.load(path, threads=2)
    vectors = model.run(batch)  # (B, D) float32
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from models.bert import BertEncoder
from models.errors import ModelLoadError
from models.onnx_export import OUTPUT_NAME, Precision, ensure_onnx
from models.settings import EncoderSettings, Pooling, Runtime

INT8_SUFFIX = "+int8"
CPU_BATCH_MAX_TOKENS = 1_024


class OnnxModel:
    """An ``InferenceSession`` over an exported encoder file; ``run`` maps a tokenised batch to
    unit embeddings. Not thread-safe on its own: ``TextEncoder`` serialises calls."""

    batch_max_tokens = CPU_BATCH_MAX_TOKENS
    """The most padded tokens ``TextEncoder`` puts in one pass on this runtime."""

    def __init__(self, session: Any, path: Path, precision: Precision) -> None:
        self.session = session
        self.path = path
        self.precision = precision
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def load(cls, path: Path, threads: int = 0, precision: Precision = "fp32") -> OnnxModel:
        """A CPU session over ``path`` with ``threads`` intra-op threads (0 = usable cores)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or usable_cores()
        options.inter_op_num_threads = 1  # one graph at a time: parallelism is intra-op
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own pybind types; keep the cause
            raise ModelLoadError(f"ONNX Runtime could not load {path}: {error}") from error
        return cls(session, path, precision)

    def run(self, batch: Mapping[str, Any]) -> np.ndarray:
        """Unit embeddings (B, D) float32 of a tokenised batch (tensors or arrays, (B, T))."""
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self.input_names}
        (out,) = self.session.run([OUTPUT_NAME], feed)
        return np.asarray(out, dtype=np.float32)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, as ``taskset`` or a cgroup set)."""
    return len(os.sched_getaffinity(0))


def precision_of(runtime: Runtime) -> Precision:
    """``fp32`` for ``onnx``, ``int8`` for ``onnx-int8``."""
    if runtime == "torch":
        raise ValueError("the torch runtime has no ONNX precision")
    return "int8" if runtime == "onnx-int8" else "fp32"


def runtime_version(torch_version: str, runtime: Runtime) -> str:
    """The ``model_version`` of ``runtime``'s embeddings: int8 vectors are not interchangeable
    with fp32 ones, fp32 ONNX ones are (within float error)."""
    return torch_version + INT8_SUFFIX if runtime == "onnx-int8" else torch_version


def load_onnx_model(
    model: BertEncoder,
    tokenizer: Any,
    pooling: Pooling,
    torch_version: str,
    settings: EncoderSettings,
) -> OnnxModel:
    """Export ``model`` (or reuse the cached export of ``torch_version``) and open a session."""
    precision = precision_of(settings.runtime)
    path = ensure_onnx(model, pooling, torch_version, settings.onnx_cache(), precision, tokenizer)
    return OnnxModel.load(path, settings.onnx_threads, precision)
