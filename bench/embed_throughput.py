"""Embedding throughput on CPU: feedline's encoder runtimes beside sentence-transformers, on
real prompts, interleaved in one process.

The prompts are post and member prompts of the synthetic world, rendered by the prompt
library (percentile tokens, member histories), the text the embedding worker embeds. Backends:

- the peer: ``SentenceTransformer(default_model_path()).encode(batch_size=32)`` (it sorts by
  characters and pads each batch of 32 to its longest text);
- feedline ``TextEncoder`` with ``runtime`` ``torch`` (float32, and bfloat16 autocast, the
  default on CPUs with AMX), ``onnx`` and ``onnx-int8`` (token-budget batches, percentile
  tokens as single tokens).

Every backend embeds every prompt once per round, rounds in rotating order; rates are the
median over rounds. Per backend: prompts/s, real tokens/s (tokens before padding, each counted
with the backend's own tokenizer: the peer splits ``<view_pct>`` into several pieces), the
ratio per real token to the peer, the padding share, and the cosine to feedline's torch fp32
(mean, min). The last line says whether the goal holds: some backend other than torch
float32 at least 2x the peer per real token with cosine at least 0.99 mean and 0.98 min.
With CUDA (the device tool) the torch variants run on the GPU (float32, float16 — CUDA's
default — and bfloat16), the peer runs there in float32 and in float16 (``model.half()``),
the ONNX runtimes (CPU only) are left out unless named, and each torch variant's model FLOP/s
(real tokens/s x 22 MFLOP) is reported against a large matmul's FLOP/s at its precision.

    python -m bench.embed_throughput [--posts 256] [--members 128] [--rounds 3] [--threads N]
        [--backends torch,torch-bf16,onnx,onnx-int8] [--batch-max-tokens N]
"""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import torch

from bench.common import emit
from feedline.world import WorldConfig, generate_world
from feedline.world_prompts import member_inputs, post_inputs
from models.encoder import TextEncoder, default_model_path
from models.onnx_runtime import usable_cores
from models.prompt_tokenizer import load_prompt_tokenizer
from models.settings import EncoderSettings, Runtime, TorchDtype
from processors.batching import token_budget_batches
from processors.prompts import PromptConfig, PromptLibrary
from processors.token_budget import TokenMeter

BENCH = "embed_throughput"
PEER = "sentence-transformers"
PEER_BATCH = 32
VARIANTS: dict[str, tuple[Runtime, TorchDtype]] = {
    "torch": ("torch", "float32"),  # the reference every cosine is taken against
    "torch-fp16": ("torch", "float16"),
    "torch-bf16": ("torch", "bfloat16"),
    "onnx": ("onnx", "float32"),
    "onnx-int8": ("onnx-int8", "float32"),
}
"""Backend name -> (``EncoderSettings.runtime``, ``torch_dtype``)."""
CPU_DEFAULT = ("torch", "torch-bf16", "onnx", "onnx-int8")
CUDA_DEFAULT = ("torch", "torch-fp16", "torch-bf16")
PEER_FP16 = f"{PEER}-fp16"
FLOP_PER_TOKEN = 22e6  # MiniLM-L6 forward at 128 tokens: 2 x 21M weights + attention
GOAL_RATIO, GOAL_MEAN, GOAL_MIN = 2.0, 0.99, 0.98


class Backend:
    """One way of embedding: its encode call, token counts and padded tokens per pass."""

    def __init__(
        self, name: str, encode: Callable[[list[str]], np.ndarray], lengths: list[int], padded: int
    ) -> None:
        self.name, self.encode, self.lengths, self.padded = name, encode, lengths, padded
        self.seconds: list[float] = []

    def timed(self, prompts: list[str]) -> np.ndarray:
        began = time.perf_counter()
        vectors = self.encode(prompts)
        self.seconds.append(time.perf_counter() - began)
        return vectors


def render_prompts(posts: int, members: int) -> list[str]:
    """``posts`` post prompts then ``members`` member prompts of a generated world."""
    config = WorldConfig(members=max(200, members), posts=max(1000, posts))
    world = generate_world(config)
    library = PromptLibrary(PromptConfig(), TokenMeter(load_prompt_tokenizer(EncoderSettings())))
    post_prompts = [library.render_post(*i) for i in list(post_inputs(world).values())[:posts]]
    members_in = list(member_inputs(world, library).values())[:members]
    return post_prompts + [library.render_member(*i) for i in members_in]


def feedline_backend(
    name: str, prompts: list[str], threads: int, cache: Path | None, batch_max_tokens: int
) -> tuple[Backend, TextEncoder]:
    runtime, dtype = VARIANTS[name]
    settings = EncoderSettings(
        runtime=runtime,
        torch_dtype=dtype,
        onnx_threads=threads,
        onnx_cache_dir=cache,
        batch_max_tokens=batch_max_tokens,
    )
    encoder = TextEncoder.load(settings)
    lengths = encoder.token_lengths(prompts)
    budget = encoder.batch_max_tokens  # what TextEncoder.encode uses on this runtime
    batches = token_budget_batches(lengths, budget, settings.batch_max_items)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return Backend(name, encoder.encode, lengths, padded), encoder


def peer_backend(prompts: list[str], device: str, half: bool = False) -> Backend:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(default_model_path()), device=device)
    if half:
        model.half()
    limit = model.max_seq_length
    lengths = [
        len(ids) for ids in model.tokenizer(prompts, truncation=True, max_length=limit)["input_ids"]
    ]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # as ST sorts
    chunks = [order[i : i + PEER_BATCH] for i in range(0, len(order), PEER_BATCH)]
    padded = sum(len(c) * max(lengths[i] for i in c) for c in chunks)

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(
            model.encode(
                texts,
                batch_size=PEER_BATCH,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        )

    return Backend(PEER_FP16 if half else PEER, encode, lengths, padded)


def run_rounds(
    backends: Sequence[Backend], prompts: list[str], rounds: int
) -> dict[str, np.ndarray]:
    """Warm up, then time every backend once per round in rotating order; returns the
    vectors of each backend's last pass."""
    for backend in backends:
        backend.encode(prompts[:PEER_BATCH])
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(rounds):
        shift = round_ % len(backends)
        for backend in [*backends[shift:], *backends[:shift]]:
            vectors[backend.name] = backend.timed(prompts)
    return vectors


def report(
    backends: Sequence[Backend], vectors: dict[str, np.ndarray], config: dict[str, Any]
) -> None:
    peer = next(b for b in backends if b.name == PEER)
    peer_tokens_s = sum(peer.lengths) / median(peer.seconds)
    half_peer = next((b for b in backends if b.name == PEER_FP16), None)
    half_tokens_s = sum(half_peer.lengths) / median(half_peer.seconds) if half_peer else 0.0
    reference = vectors["torch"]
    met: list[str] = []
    for backend in backends:
        cfg = {**config, "backend": backend.name}
        seconds = median(backend.seconds)
        tokens_s = sum(backend.lengths) / seconds
        emit(
            BENCH,
            cfg,
            "prompts_per_s",
            len(backend.lengths) / seconds,
            "prompts/s",
            PEER,
            len(peer.lengths) / median(peer.seconds),
        )
        emit(BENCH, cfg, "real_tokens_per_s", tokens_s, "tokens/s", PEER, peer_tokens_s)
        if half_peer is not None:  # on CUDA: the peer at half precision too
            emit(BENCH, cfg, "real_tokens_per_s", tokens_s, "tokens/s", PEER_FP16, half_tokens_s)
        emit(BENCH, cfg, "padding_share", 1 - sum(backend.lengths) / backend.padded, "ratio")
        if backend.name in (PEER, PEER_FP16):
            continue  # another model_version (no percentile tokens): not comparable
        cos = (vectors[backend.name] * reference).sum(axis=1)
        emit(BENCH, cfg, "cosine_to_torch_fp32_mean", float(cos.mean()), "cosine")
        emit(BENCH, cfg, "cosine_to_torch_fp32_min", float(cos.min()), "cosine")
        good = cos.mean() >= GOAL_MEAN and cos.min() >= GOAL_MIN
        if backend.name != "torch" and good and tokens_s >= GOAL_RATIO * peer_tokens_s:
            met.append(backend.name)
    goal = (
        f">= {GOAL_RATIO}x {PEER} per real token with cosine to torch fp32 "
        f">= {GOAL_MEAN} mean and >= {GOAL_MIN} min"
    )
    emit(BENCH, {**config, "goal": goal, "met_by": met}, "goal_met", float(bool(met)), "bool")


def matmul_flop_per_s(dtype: torch.dtype, n: int = 8192, repeats: int = 10) -> float:
    """FLOP/s of an ``n``-cube matmul at ``dtype`` on the GPU (after three warm-ups)."""
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(repeats):
        a @ a
    torch.cuda.synchronize()
    return repeats * 2 * n**3 / (time.perf_counter() - began)


def cuda_ceiling(backends: Sequence[Backend], config: dict[str, Any]) -> None:
    """Each torch variant's real tokens/s x FLOP per token against a large matmul's FLOP/s
    at the variant's precision on the device (float32 without TF32, torch's default)."""
    ceilings: dict[str, float] = {}
    for backend in backends:
        if backend.name not in VARIANTS or VARIANTS[backend.name][0] != "torch":
            continue
        dtype = VARIANTS[backend.name][1]
        if dtype not in ceilings:
            ceilings[dtype] = matmul_flop_per_s(getattr(torch, dtype))
        achieved = sum(backend.lengths) / median(backend.seconds) * FLOP_PER_TOKEN
        emit(
            BENCH,
            {**config, "backend": backend.name, "flop_per_token": FLOP_PER_TOKEN},
            "model_flop_per_s",
            achieved,
            "FLOP/s",
            f"{dtype} 8192^3 matmul on the device",
            ceilings[dtype],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=256)
    parser.add_argument("--members", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument(
        "--backends",
        default=None,
        help=f"comma-separated of {', '.join(VARIANTS)} (torch is always run: the cosine "
        f"reference); default: {','.join(CPU_DEFAULT)}, or {','.join(CUDA_DEFAULT)} with CUDA",
    )
    parser.add_argument(
        "--batch-max-tokens",
        type=int,
        default=EncoderSettings.model_fields["batch_max_tokens"].default,
        help="feedline's padded tokens per forward pass (FEEDLINE_ENCODER_BATCH_MAX_TOKENS)",
    )
    parser.add_argument(
        "--onnx-cache-dir",
        type=Path,
        default=None,
        help="default: FEEDLINE_ENCODER_ONNX_CACHE_DIR or ~/.cache/feedline/onnx",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prompts = render_prompts(args.posts, args.members)
    cuda = torch.cuda.is_available()
    names = chosen_variants(args.backends, cuda)
    backends = [peer_backend(prompts, "cuda" if cuda else "cpu")]
    if cuda:
        backends.append(peer_backend(prompts, "cuda", half=True))
    encoders = {}
    for name in names:
        backend, encoders[name] = feedline_backend(
            name, prompts, args.threads, args.onnx_cache_dir, args.batch_max_tokens
        )
        backends.append(backend)
    vectors = run_rounds(backends, prompts, args.rounds)
    config = {
        "posts": args.posts,
        "members": args.members,
        "rounds": args.rounds,
        "threads": args.threads,
        "peer_batch_size": PEER_BATCH,
        "batch_max_tokens": args.batch_max_tokens,
        "device": "cuda" if cuda else "cpu",
        "model_version": encoders["torch"].model_version,
        "statistic": "median over rounds",
    }
    report(backends, vectors, config)
    if cuda:
        cuda_ceiling(backends, config)


def chosen_variants(listed: str | None, cuda: bool) -> list[str]:
    """The feedline variants to run, ``torch`` (the cosine reference) first."""
    names = listed.split(",") if listed else list(CUDA_DEFAULT if cuda else CPU_DEFAULT)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    return ["torch", *dict.fromkeys(n for n in names if n != "torch")]


if __name__ == "__main__":
    main()
