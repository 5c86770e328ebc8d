"""The whole pipeline under load: sustained capacity, then freshness at half of it.

For each number of embedding workers (``--workers 1,2``), a fresh stack on the project's own
broker (``LocalKafka``): the prompt processor, the embedding workers and the query service as
processes, exactly as ``feedline demo`` runs them, with their default settings and the bundled
all-MiniLM-L6-v2, except that W embedding workers on C cores get C/W torch threads each
(``FEEDLINE_ENCODER_TORCH_THREADS``), as the README advises. After a backfill (every member's
profile and ``--backfill-posts`` posts, indexed), the bench publishes a seeded mix (``--mix``:
new posts, engagements, profile changes; ``feedline.soak_workload``) paced at a constant rate,
in steps that grow by ``--growth`` from ``--start-rate`` events/s:

- every 2 s it reads each stage's backlog: the prompt processor's and the embedding workers'
  consumer-group lag (committed offsets; ``streams.lag``) and the index feed's lag
  (``/v1/stats``);
- a step is **sustained** when, over its second half, no stage's backlog grows faster than
  5% of the offered rate and none holds more than ``--max-backlog-s`` seconds of input; the
  first stage that fails is the **bottleneck**. The ramp stops at the first step not
  sustained; the capacity is the last sustained rate (events/s, and new posts/s at the mix's
  share of posts).

Then, once every backlog drained, it holds 50% of the capacity for ``--hold-s`` seconds and
follows every new post of the hold: when it first became visible (``GET /v1/posts/{id}``,
polled), and, from that version's ``embeddings.posts`` record, when it was prompted and
embedded. Freshness p50/p99 per stage (``event_to_prompt``, ``prompt_to_embedding``,
``embedding_to_visible``) and end to end (creation → visible), the peak backlog of the hold,
and each role's peak RSS (``VmHWM``) are printed. Issue 15's goal on a 2-core CPU: end-to-end
p99 ≤ 1 s at 50% of capacity (printed as the baseline of that line). Member freshness is not
followed here (the API does not say when a member's vector changed); the service exports it
as ``feedline_freshness_seconds{entity="member"}``.

Everything (broker, roles, temp dirs) stops and is removed at the end, on failure and on
Ctrl-C too.

    python -m bench.pipeline_load --workers 1,2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from bench.common import emit
from feedline.processes import RoleGroup, RoleProcess
from feedline.soak_workload import SoakWorkload
from schemas import EmbeddingUpdate, PostCreated, decode
from service.client import QueryClient
from streams.lag import LagReadError, consumer_group_lag
from streams.lag_exporter import pipeline_groups
from streams.local_broker import LocalKafka
from streams.producer import EventProducer, ProducerEvent
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_POSTS, ensure_topics

BENCH = "pipeline_load"
STAGES = ("event_to_prompt", "prompt_to_embedding", "embedding_to_visible")
SAMPLE_EVERY_S = 2.0
TICK_S = 0.02
GROWTH_SLACK = 0.05
"""A step is sustained while no backlog grows faster than this share of the offered rate."""
COMMIT_ALLOWANCE_S = 3.0
"""Seconds of input a stage may hold before its growth counts: backlogs are read from
committed offsets, and the prompt processor commits every 2 s (``commit_interval_s``), so
its backlog saws up to ~2 s of input (engagements count twice: their repartition too)."""
MIN_BACKLOG = 50
"""... and at low rates a few dozen messages (one commit's worth) are no sign of falling behind."""


@dataclass(frozen=True)
class LoadConfig:
    """What one run offers and how it judges it."""

    members: int
    backfill_posts: int
    mix: dict[str, int]
    start_rate: float
    growth: float
    max_rate: float
    step_s: float
    max_backlog_s: float
    hold_s: float
    seed: int

    @property
    def post_share(self) -> float:
        """Share of events that are new posts."""
        return self.mix.get("post", 0) / sum(self.mix.values())


# --- the stack -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def stack(
    workdir: Path, workers: int
) -> Iterator[tuple[KafkaSettings, RoleGroup, LocalKafka, int]]:
    """Broker and roles, stopped (roles first) however the block ends."""
    with LocalKafka(workdir / "kafka") as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        ensure_topics(kafka)
        port = free_port()
        env = {
            "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "FEEDLINE_LOG_LEVEL": "INFO",
            "FEEDLINE_PROMPTS_DATA_DIR": str(workdir / "prompts"),
            "FEEDLINE_INDEX_SNAPSHOT_DIR": str(workdir / "snapshots"),
        }
        logs = workdir / "logs"
        # W embedding workers on C cores: C/W torch threads each (models/settings.py)
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        embed_env = {**env, "FEEDLINE_ENCODER_TORCH_THREADS": str(threads)}
        roles = RoleGroup(
            RoleProcess("prompts", ["worker", "prompts"], env, logs),
            *(
                RoleProcess(f"embed{i}", ["worker", "embed"], embed_env, logs)
                for i in range(workers)
            ),
            RoleProcess("serve", ["serve", "--port", str(port)], env, logs),
        )
        with roles:
            yield kafka, roles, broker, port


def wait_for(condition: Any, what: str, roles: RoleGroup, timeout_s: float) -> None:
    """Poll ``condition`` until true; fail on a dead role or the timeout, with its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        failed = roles.failed()
        if failed:
            raise SystemExit(f"{failed[0]} exited:\n{roles[failed[0]].log_tail()}")
        if condition():
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")


def peak_rss_mb(pid: int | None) -> float | None:
    """Peak resident memory (``VmHWM``) of a live process, in MiB."""
    if pid is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


# --- the load --------------------------------------------------------------------------------


class PacedPublisher:
    """Publishes the workload at ``rate`` events/s from a background thread (``rate`` may
    change at any time); remembers when each new post was created while ``follow`` is on."""

    def __init__(self, kafka: KafkaSettings, workload: SoakWorkload) -> None:
        self.workload = workload
        self.producer = EventProducer(kafka, linger_ms=0)
        self.rate = 0.0
        self.follow = False
        self.followed: dict[str, int] = {}
        self.published = 0
        self.posts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-publisher", daemon=True)

    def start(self) -> PacedPublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        owed, last = 0.0, time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            owed = min(owed + self.rate * (now - last), max(self.rate, 1.0))
            last = now
            due = int(owed)
            if due:
                owed -= due
                self._publish(self.workload.next_batch(due, int(time.time() * 1000)))
            time.sleep(TICK_S)

    def _publish(self, batch: list[ProducerEvent]) -> None:
        """Publish and wait for the acks (``flush`` raises on any failed record)."""
        self.producer.publish_many(batch)
        self.producer.flush()
        for event in batch:
            if isinstance(event, PostCreated):
                self.posts += 1
                if self.follow:
                    self.followed[event.post_id] = event.created_at_ms
        self.published += len(batch)
        self.workload.delivered(batch)


@dataclass
class Backlogs:
    """Backlog samples of one step: (seconds into the step, {stage: messages})."""

    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    def slope(self, stage: str, since_s: float) -> float:
        """Messages per second the stage's backlog grew by over the samples after ``since_s``."""
        points = [(t, b[stage]) for t, b in self.samples if t >= since_s]
        if len(points) < 3:
            return 0.0
        t, y = np.array(points, dtype=np.float64).T
        return float(np.polyfit(t, y, 1)[0])

    def peak(self, stage: str, since_s: float = 0.0) -> int:
        return max((b[stage] for t, b in self.samples if t >= since_s), default=0)


class BacklogReader:
    """Each stage's backlog now: consumer-group lag of the two worker groups, and the index
    feed's own lag as the service reports it."""

    def __init__(self, kafka: KafkaSettings, client: QueryClient) -> None:
        prompts, embed, _ = pipeline_groups(kafka)
        self.kafka = kafka
        self.client = client
        self.groups = {"prompt processor": prompts, "embedding workers": embed}
        self.last: dict[str, int] = {}

    def read(self) -> dict[str, int]:
        backlog = {}
        for stage, spec in self.groups.items():
            try:
                backlog[stage] = sum(
                    consumer_group_lag(self.kafka, spec.group, spec.topics).values()
                )
            except LagReadError:
                backlog[stage] = -1
        backlog["index feed"] = self.client.stats().lag
        return backlog

    def drained(self) -> bool:
        return all(v == 0 for v in self.read().values())


def run_step(
    publisher: PacedPublisher, reader: BacklogReader, rate: float, step_s: float
) -> Backlogs:
    publisher.rate = rate
    backlogs = Backlogs()
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < step_s:
        backlogs.samples.append((elapsed, reader.read()))
        time.sleep(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - began - elapsed)))
    return backlogs


def judge(backlogs: Backlogs, rate: float, config: LoadConfig) -> str | None:
    """None when the step was sustained, else the stage that fell behind worst.

    Over the step's second half a stage is behind when its backlog grows faster than 5% of
    the offered rate while holding more than ``COMMIT_ALLOWANCE_S`` of input and
    ``MIN_BACKLOG`` messages (below that,
    the sawtooth of periodic commits looks like growth), or when it holds more than
    ``max_backlog_s``.
    """
    half = config.step_s / 2
    worst, worst_excess = None, 0.0
    for stage in backlogs.samples[0][1]:
        growth = backlogs.slope(stage, half) / rate
        held_s = backlogs.peak(stage, half) / rate
        excess = (held_s - config.max_backlog_s) / config.max_backlog_s
        if held_s > COMMIT_ALLOWANCE_S and backlogs.peak(stage, half) > MIN_BACKLOG:
            excess = max(excess, growth - GROWTH_SLACK)
        if excess > worst_excess:
            worst, worst_excess = stage, excess
    return worst


# --- freshness of the hold -------------------------------------------------------------------


def first_visible(
    client: QueryClient, followed: dict[str, int], seen: dict[str, tuple[int, int]]
) -> None:
    """Record (version, indexed_at_ms) of followed posts the index now holds."""
    for post_id in followed.keys() - seen.keys():
        info = client.post(post_id)
        if info is not None:
            seen[post_id] = (info.version, info.indexed_at_ms)


def embedding_times(
    kafka: KafkaSettings, wanted: dict[str, int], timeout_s: float = 60.0
) -> dict[str, EmbeddingUpdate]:
    """The ``embeddings.posts`` record of each wanted ``post_id -> version``."""
    consumer = Consumer(
        {
            **kafka.confluent_config(),
            "group.id": f"bench-load-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    topic = kafka.topic(EMBEDDINGS_POSTS.name)
    found: dict[str, EmbeddingUpdate] = {}
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout_s
        while len(found) < len(wanted) and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=1.0):
                if message.error() or message.value() is None:
                    continue
                key = (message.key() or b"").decode()
                if key not in wanted:
                    continue
                update = decode(EmbeddingUpdate, message.value())
                if update.version == wanted[key]:
                    found[key] = update
    finally:
        consumer.close()
    return found


def freshness(
    created: dict[str, int], seen: dict[str, tuple[int, int]], updates: dict[str, EmbeddingUpdate]
) -> dict[str, np.ndarray]:
    """Seconds per stage and end to end, one value per followed post that became visible."""
    spans: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "end_to_end")}
    for post_id, (_, indexed_at_ms) in seen.items():
        update = updates.get(post_id)
        if update is None:
            continue
        spans["event_to_prompt"].append(update.prompted_at_ms - update.event_time_ms)
        spans["prompt_to_embedding"].append(update.embedded_at_ms - update.prompted_at_ms)
        spans["embedding_to_visible"].append(indexed_at_ms - update.embedded_at_ms)
        spans["end_to_end"].append(indexed_at_ms - created[post_id])
    return {stage: np.array(values) / 1000 for stage, values in spans.items()}


# --- one configuration -----------------------------------------------------------------------


def run_workers(workers: int, config: LoadConfig, root: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"load-{workers}w-", dir=root))
    base = {"workers": workers, "mix": config.mix, "step_s": config.step_s}
    with (
        stack(workdir, workers) as (kafka, roles, broker, port),
        QueryClient(f"http://127.0.0.1:{port}") as client,
    ):
        wait_for(client.is_ready, "the query service", roles, 300)
        workload = SoakWorkload(config.seed, config.members, weights=config.mix)
        publish_backfill(kafka, workload, config)
        reader = BacklogReader(kafka, client)
        wait_for(
            lambda: client.stats().posts >= config.backfill_posts and reader.drained(),
            "the backfill",
            roles,
            600,
        )
        publisher = PacedPublisher(kafka, workload).start()
        try:
            capacity, bottleneck, steps = ramp(publisher, reader, config, roles)
            publisher.rate = 0.0
            wait_for(reader.drained, "the ramp's backlog to drain", roles, 900)
            hold = hold_phase(publisher, reader, client, kafka, capacity / 2, config, roles)
        finally:
            publisher.stop()
            del publisher  # librdkafka's client goes with the object: before the broker does
        rss = {name: peak_rss_mb(role.pid) for name, role in roles.roles.items()}
        rss["broker"] = peak_rss_mb(broker.pid)
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        **base,
        "capacity": capacity,
        "bottleneck": bottleneck,
        "steps": steps,
        "hold": hold,
        "rss_mb": rss,
    }


def publish_backfill(kafka: KafkaSettings, workload: SoakWorkload, config: LoadConfig) -> None:
    """Every member's profile, then ``backfill_posts`` posts from the workload's own id
    sequence (so the load's new posts are new)."""
    with EventProducer(kafka) as producer:
        now_ms = int(time.time() * 1000)
        backfill = workload.next_batch(config.members, now_ms)
        workload.weights = {"post": 1}
        backfill += workload.next_batch(config.backfill_posts, now_ms)
        workload.weights = dict(config.mix)
        producer.publish_many(backfill)
        producer.flush()
    workload.delivered(backfill)


def ramp(
    publisher: PacedPublisher, reader: BacklogReader, config: LoadConfig, roles: RoleGroup
) -> tuple[float, str | None, list[dict[str, Any]]]:
    """(capacity in events/s, bottleneck stage, per-step summaries)."""
    rate, capacity, steps = config.start_rate, 0.0, []
    while rate <= config.max_rate:
        backlogs = run_step(publisher, reader, rate, config.step_s)
        if roles.failed():
            raise SystemExit(f"{roles.failed()} exited during the ramp")
        behind = judge(backlogs, rate, config)
        steps.append(
            {
                "rate": round(rate, 2),
                "sustained": behind is None,
                "peak_backlog": {s: backlogs.peak(s) for s in backlogs.samples[0][1]},
            }
        )
        if behind is not None:
            return capacity, behind, steps
        capacity = rate
        rate *= config.growth
    return capacity, None, steps


def hold_phase(
    publisher: PacedPublisher,
    reader: BacklogReader,
    client: QueryClient,
    kafka: KafkaSettings,
    rate: float,
    config: LoadConfig,
    roles: RoleGroup,
) -> dict[str, Any]:
    seen: dict[str, tuple[int, int]] = {}
    publisher.followed.clear()
    publisher.follow = True
    publisher.rate = rate
    began = time.monotonic()
    peak: dict[str, int] = {}
    while time.monotonic() - began < config.hold_s:
        first_visible(client, publisher.followed, seen)
        for stage, backlog in reader.read().items():
            peak[stage] = max(peak.get(stage, 0), backlog)
        time.sleep(0.05)
    publisher.rate = 0.0
    publisher.follow = False
    created = dict(publisher.followed)

    def all_visible() -> bool:
        first_visible(client, created, seen)
        return len(seen) == len(created)

    wait_for(all_visible, "the hold's posts to become visible", roles, 300)
    updates = embedding_times(kafka, {p: v for p, (v, _) in seen.items()})
    spans = freshness(created, seen, updates)
    return {
        "rate": rate,
        "posts_followed": len(created),
        "posts_timed": int(spans["end_to_end"].size),
        "peak_backlog": peak,
        "seconds": {
            stage: {f"p{q}": float(np.percentile(v, q)) if v.size else None for q in (50, 99)}
            for stage, v in spans.items()
        },
    }


# --- output ----------------------------------------------------------------------------------


def report(result: dict[str, Any], one_worker: dict[str, Any] | None, config: LoadConfig) -> None:
    cfg = {
        "workers": result["workers"],
        "mix": config.mix,
        "step_s": config.step_s,
        "max_backlog_s": config.max_backlog_s,
        "bottleneck": result["bottleneck"],
        "steps": result["steps"],
    }
    baseline = None if one_worker is None else one_worker["capacity"]
    emit(
        BENCH,
        cfg,
        "capacity_events_per_s",
        result["capacity"],
        "events/s",
        None if baseline is None else "one embedding worker, same run",
        baseline,
    )
    emit(
        BENCH,
        cfg,
        "capacity_new_posts_per_s",
        result["capacity"] * config.post_share,
        "posts/s",
        None if baseline is None else "one embedding worker, same run",
        None if baseline is None else baseline * config.post_share,
    )
    hold = result["hold"]
    hold_cfg = {
        "workers": result["workers"],
        "rate": round(hold["rate"], 2),
        "hold_s": config.hold_s,
        "posts_followed": hold["posts_followed"],
        "posts_timed": hold["posts_timed"],
        "peak_backlog": hold["peak_backlog"],
    }
    for stage, percentiles in hold["seconds"].items():
        for q, value in percentiles.items():
            if value is None:
                continue
            goal = stage == "end_to_end" and q == "p99"
            emit(
                BENCH,
                {**hold_cfg, "stage": stage},
                f"freshness_{q}_s",
                value,
                "s",
                "issue 15 goal (p99 <= 1 s at 50% of capacity)" if goal else None,
                1.0 if goal else None,
            )
    for role, mb in result["rss_mb"].items():
        if mb is not None:
            emit(BENCH, {"workers": result["workers"], "role": role}, "peak_rss_mb", mb, "MiB")


def parse_mix(text: str) -> dict[str, int]:
    """``post=20,engage=70,profile=10`` → weights."""
    pairs = (item.split("=", 1) for item in text.split(","))
    return {kind.strip(): int(weight) for kind, weight in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2", help="embedding workers per run")
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--backfill-posts", type=int, default=200)
    parser.add_argument("--mix", type=parse_mix, default=parse_mix("post=20,engage=70,profile=10"))
    parser.add_argument("--start-rate", type=float, default=4.0, help="events/s of the first step")
    parser.add_argument("--growth", type=float, default=1.5, help="rate factor per step")
    parser.add_argument("--max-rate", type=float, default=2_000.0)
    parser.add_argument("--step-s", type=float, default=30.0)
    parser.add_argument(
        "--max-backlog-s",
        type=float,
        default=10.0,
        help="a stage holding more seconds of input than this is behind",
    )
    parser.add_argument("--hold-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    config = LoadConfig(
        args.members,
        args.backfill_posts,
        args.mix,
        args.start_rate,
        args.growth,
        args.max_rate,
        args.step_s,
        args.max_backlog_s,
        args.hold_s,
        args.seed,
    )
    root = Path(tempfile.mkdtemp(prefix="feedline-bench-load-"))
    try:
        one_worker = None
        for workers in (int(w) for w in args.workers.split(",")):
            result = run_workers(workers, config, root)
            report(result, one_worker, config)
            one_worker = one_worker or (result if workers == 1 else None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
