"""Re-embeds per 1,000 engagements on the synthetic world at default settings.

The world's events run through the prompt processor's real handlers (plain Python, no
broker), partitioned by key as Kafka would, with a simulated clock at each event's time and
member-side ticks every ``tick_interval_s`` of simulated time. Counted: prompt requests caused
by engagements (post re-embeds when a percentile bucket moves, member re-embeds after new
positive engagements). Baseline, same run: the naive policy that re-embeds a post on every
count change and a member on every positive engagement.

Two timelines: the world's own (about 20k engagements over 7 days) and the same events
compressed into 10 minutes (how ``make demo`` replays them, where the debounce and the
minimum interval matter most).

    python -m bench.reembed_rate
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from collections.abc import Iterator
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from bench.common import emit
from feedline.world import POSITIVE_ACTIONS, event_time_ms, generate_world
from models.encoder import load_tokenizer
from models.settings import EncoderSettings
from processors.feature_sketches import ACTION_COUNTERS, PartitionSketches
from processors.prompts import PromptLibrary
from processors.token_budget import TokenMeter
from streams.metrics import PromptMetrics
from streams.prompt_handlers import PromptHandlers, PromptTables
from streams.prompt_settings import PromptWorkerSettings
from streams.records import Incoming, Outgoing
from streams.settings import KafkaSettings

PARTITIONS = 4
KEYS = {"posts.created": "post_id", "engagements": "post_id", "members.profile": "member_id"}


class Simulation:
    """The post and member sides of one prompt processor, driven by a simulated clock."""

    def __init__(self, settings: PromptWorkerSettings) -> None:
        tokenizer, _ = load_tokenizer(EncoderSettings())
        config = settings.prompt_config()
        self.now_ms = 0
        self.kafka = KafkaSettings(partitions=PARTITIONS)
        self.metrics = PromptMetrics(CollectorRegistry())
        self.handlers = PromptHandlers(
            self.kafka,
            self.metrics,
            PromptLibrary(config, TokenMeter(tokenizer)),
            settings.reembed_policy(),
            PartitionSketches(config.sketch_k, settings.sketch_refresh_every),
            clock=lambda: self.now_ms,
        )
        self.tables = PromptTables()
        self.partitioner = DefaultPartitioner()
        self.offset = 0

    def feed(self, topic: str, value: dict[str, Any], at_ms: int) -> list[Outgoing]:
        self.now_ms = at_ms
        key = str(value[KEYS[topic]]).encode()
        record = self._incoming(topic, key, json.dumps(value).encode())
        if topic == "members.profile":
            return self.handlers.on_member_side(record, self.tables)
        out = self.handlers.on_post_side(record, self.tables)
        for forwarded in [o for o in out if o.topic == "engagements.by-member"]:
            joined = self._incoming(forwarded.topic, forwarded.key or b"", forwarded.value or b"")
            out += self.handlers.on_member_side(joined, self.tables)
        return out

    def tick(self, at_ms: int) -> list[Outgoing]:
        self.now_ms = at_ms
        out: list[Outgoing] = []
        for partition in range(PARTITIONS):
            tick = self.handlers.tick(partition)
            record = Incoming(tick.topic, partition, 0, tick.key, tick.value, tick.headers or [])
            out += self.handlers.on_member_side(record, self.tables)
        return out

    def _incoming(self, topic: str, key: bytes, value: bytes) -> Incoming:
        self.offset += 1
        partition = self.partitioner(key, list(range(PARTITIONS)), list(range(PARTITIONS)))
        return Incoming(topic, partition, self.offset, key, value, [])


def timeline(records: list[dict[str, Any]], span_ms: int | None) -> Iterator[tuple[int, str, dict]]:
    """(time, topic, value) in publish order, optionally compressed into ``span_ms``."""
    times = [event_time_ms(r["value"]) for r in records]
    first, last = min(times), max(times)
    scale = 1.0 if span_ms is None else span_ms / max(1, last - first)
    for at, record in zip(times, records, strict=True):
        yield first + int((at - first) * scale), record["topic"], record["value"]


def run(span_ms: int | None, settings: PromptWorkerSettings) -> dict[str, float]:
    world = generate_world()
    records = list(world.records())
    simulation = Simulation(settings)
    tick_ms, next_tick = int(settings.tick_interval_s * 1000), None
    prompts = {"post": 0, "member": 0}
    naive = {"post": 0, "member": 0}
    engagements = 0
    for at, topic, value in timeline(records, span_ms):
        while next_tick is not None and next_tick <= at:
            _count(simulation.tick(next_tick), prompts, engagement_caused=True)
            next_tick += tick_ms
        next_tick = next_tick or at + tick_ms
        caused = topic == "engagements"
        if caused:
            engagements += 1
            naive["post"] += value["action"] in ACTION_COUNTERS
            naive["member"] += value["action"] in POSITIVE_ACTIONS
        _count(simulation.feed(topic, value, at), prompts, engagement_caused=caused)
    per_1k = 1000 / engagements
    return {
        "post": prompts["post"] * per_1k,
        "member": prompts["member"] * per_1k,
        "naive_post": naive["post"] * per_1k,
        "naive_member": naive["member"] * per_1k,
        "engagements": engagements,
    }


def _count(out: list[Outgoing], prompts: dict[str, int], engagement_caused: bool) -> None:
    if not engagement_caused:
        return
    prompts["post"] += sum(o.topic == "prompts.posts" for o in out)
    prompts["member"] += sum(o.topic == "prompts.members" for o in out)


def main() -> None:
    settings = PromptWorkerSettings()
    for label, span_ms in (("world timeline (7 days)", None), ("replayed in 10 minutes", 600_000)):
        result = run(span_ms, settings)
        config = {
            "timeline": label,
            "engagements": result["engagements"],
            "bucket_step": settings.bucket_step,
            "post_min_interval_s": settings.post_min_interval_s,
            "member_debounce_s": settings.member_debounce_s,
        }
        naive_total = result["naive_post"] + result["naive_member"]
        emit(
            "reembed_rate",
            config,
            "reembeds_per_1k_engagements",
            result["post"] + result["member"],
            "re-embeds",
            "re-embed on every change",
            naive_total,
        )
        emit(
            "reembed_rate",
            config,
            "post_reembeds_per_1k_engagements",
            result["post"],
            "re-embeds",
            "post re-embed on every count change",
            result["naive_post"],
        )
        emit(
            "reembed_rate",
            config,
            "member_reembeds_per_1k_engagements",
            result["member"],
            "re-embeds",
            "member re-embed on every positive engagement",
            result["naive_member"],
        )


if __name__ == "__main__":
    main()
