"""Prompt rendering on one core, tokenisation included: prompts/s and tokens per prompt.

Renders every post and member prompt of the synthetic world with the prompt library (token
budget measured and enforced with the real MiniLM tokenizer). Percentiles come from sketches
of the world's final engagement counts; member histories are their positive engagements.
Baseline, same run: the naive approach of formatting all fields and letting the tokenizer
truncate at the budget (one tokenisation, no truncation order).

    python -m bench.prompt_render [--seconds 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before tokenizers is imported
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np

from bench.common import emit
from feedline.world import generate_world
from feedline.world_prompts import member_inputs, post_inputs
from models.encoder import load_tokenizer
from models.settings import EncoderSettings
from processors.prompts import PromptConfig, PromptLibrary
from processors.token_budget import TokenMeter

Render = Callable[[int], str]


def rate(renderer: Callable[[], Render], items: int, seconds: float) -> tuple[float, list[str]]:
    """Renders per second over at least ``seconds``; returns the rate and one full pass.

    Each pass over the items takes a new ``renderer()``: the prompt library remembers token
    counts and cleaned text of fragments it has seen, and a second pass over the same
    prompts would measure those memos, not rendering (the pipeline renders a new post once).
    Inside a pass the memos fill as they do in the processor: history items repeat across
    members."""
    render = renderer()
    outputs = [render(i) for i in range(items)]  # warm-up pass, kept for token statistics
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        render = renderer()
        for i in range(items):
            render(i)
        done += items
    return done / (time.perf_counter() - began), outputs


def naive(parts: Sequence[str], tokenizer: object, budget: int) -> str:
    """Format every field and let the tokenizer truncate: the baseline."""
    text = "\n".join(parts)
    tokenizer(text, truncation=True, max_length=budget)  # type: ignore[operator]
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    tokenizer, _ = load_tokenizer(EncoderSettings())
    meter, config = TokenMeter(tokenizer), PromptConfig()
    library = PromptLibrary(config, meter)
    world = generate_world()
    posts = list(post_inputs(world).values())
    members = list(member_inputs(world, library).values())

    def fresh() -> PromptLibrary:
        return PromptLibrary(config, TokenMeter(tokenizer))

    def post_renderer() -> Render:
        new = fresh()
        return lambda i: new.render_post(*posts[i])

    def member_renderer() -> Render:
        new = fresh()
        return lambda i: new.render_member(*members[i])

    def naive_post(i: int) -> str:
        return naive([posts[i][0].model_dump_json()], tokenizer, config.token_budget)

    def naive_member(i: int) -> str:
        parts = [members[i][0].model_dump_json(), *members[i][1]]
        return naive(parts, tokenizer, config.token_budget)

    cases: dict[str, tuple[Callable[[], Render], int, Render]] = {
        "post": (post_renderer, len(posts), naive_post),
        "member": (member_renderer, len(members), naive_member),
    }
    for entity, (render, count, baseline) in cases.items():
        per_s, prompts = rate(render, count, args.seconds)
        baseline_per_s, _ = rate(lambda baseline=baseline: baseline, count, args.seconds)
        tokens = np.array([meter.count(p) + meter.special_tokens for p in prompts])
        bench_config = {
            "entity": entity,
            "prompts": count,
            "token_budget": config.token_budget,
            "tokenizer": "all-MiniLM-L6-v2+pct",
            "cores": 1,
        }
        emit(
            "prompt_render",
            bench_config,
            "prompts_per_second",
            per_s,
            "prompts/s",
            "format all fields + tokenizer truncation",
            baseline_per_s,
        )
        for q in (50, 99):
            emit(
                "prompt_render",
                bench_config,
                f"tokens_p{q}",
                float(np.percentile(tokens, q)),
                "tokens",
            )
        emit(
            "prompt_render",
            bench_config,
            "tokens_max",
            float(tokens.max()),
            "tokens",
            "token budget",
            config.token_budget,
        )


if __name__ == "__main__":
    main()
