"""Prompt processor throughput on engagements, beside a raw Faust agent that only counts them
(issue 15 item 6; goal: ours ≥ 1.0x the raw agent).

What is measured, on the project's own broker (``LocalKafka``), topics with the catalog's
partition count (4):

* Workload (``SoakWorkload``, seeded, the same records every run): a profile for each of
  ``--members`` members and ``--posts`` new posts, then ``--engagements`` engagements on
  those posts by those members, keyed by post_id like every producer writes them.
* Ours: ``feedline worker prompts`` as a process with its default settings (rocksdb tables,
  commits every 2 s). It first runs on the posts and profiles alone until it committed them
  (so the post and member state the engagements need exists; not measured) and stops. Then
  the engagements are published, all before it starts again, and it is measured.
* Baseline: ``bench.raw_faust_counter``, a process with one faust agent that counts
  engagements per member into one table (changelog on) with the same faust version,
  feedline's transport and the same app settings; faust commits from its acks every 2 s. Its
  topics hold the same posts, profiles and engagements, all published before it starts.
* Rate: engagements per second from the group's first commit that moved the engagements
  topic to the commit that left nothing behind (``worker_throughput.ProgressClock``: start-up,
  table recovery and the work before that first commit are excluded). Offsets are read every
  0.25 s, and commits come every 2 s on both sides, so each rate is a few percent coarse.
  Two metrics: ``prompt_processor_engagements_per_s`` waits until our member side also
  committed the ``engagements.by-member`` records the engagements caused (all of the work;
  the baseline has no member side), ``..._post_side_engagements_per_s`` only until the
  engagements topic is committed.

Runs go in ABBA order (baseline, ours, ours, baseline), each on its own fresh topics and
table directory; the means are reported, with one line per run besides. ``--profile-dir``
instead makes one run of ours under ``py-spy`` (sampling from its first commit on) and prints
the top frames to stderr. Both sides inherit the environment, so faust's own variables
(e.g. ``PRODUCER_LINGER=0.005``) reach both alike.

    python -m bench.prompt_throughput --engagements 20000
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from types import FrameType

from bench.common import emit
from bench.worker_throughput import ProgressClock
from feedline.processes import RoleProcess
from feedline.soak_workload import SoakWorkload
from streams.lag import LagReadError, consumer_group_lag
from streams.local_broker import LocalKafka
from streams.producer import EventProducer, ProducerEvent
from streams.prompt_settings import PromptWorkerSettings
from streams.settings import KafkaSettings
from streams.topics import (
    ENGAGEMENTS,
    ENGAGEMENTS_BY_MEMBER,
    MEMBERS_PROFILE,
    POSTS_CREATED,
    ensure_topics,
    partition_counts,
)

BENCH = "prompt_throughput"
ABBA = ("raw", "ours", "ours", "raw")
BASELINE = "raw faust agent counting engagements per member into one table"
PHASE_TIMEOUT_S = 1_200
OURS_GROUP = PromptWorkerSettings().app_id
RAW_GROUP = "bench-raw-counter"


@dataclass(frozen=True)
class Workload:
    """The records every run gets: state first (posts, profiles), then the engagements."""

    state: list[ProducerEvent]
    engagements: list[ProducerEvent]


@dataclass(frozen=True)
class Rate:
    """One run: engagements/s until the engagements topic, and until all work, committed."""

    post_side: float
    all_work: float
    cpu_ms_per_engagement: float
    """The process's CPU time (all threads, user + system) from the first commit on, per
    engagement committed after it: what the rate would be if nothing waited."""


def make_workload(seed: int, members: int, posts: int, engagements: int) -> Workload:
    """Profiles for every member, ``posts`` new posts, then engagements on them."""
    now_ms = int(time.time() * 1000)
    workload = SoakWorkload(seed=seed, members=members, weights={"post": 1})
    state = workload.next_batch(members + posts, now_ms)
    workload.weights = {"engage": 1}
    return Workload(state, workload.next_batch(engagements, now_ms))


def publish(kafka: KafkaSettings, events: list[ProducerEvent]) -> None:
    with EventProducer(kafka, linger_ms=20) as producer:
        producer.publish_many(events)
        producer.flush()


def topic_lags(kafka: KafkaSettings, group: str, topics: list[str]) -> dict[str, int]:
    """Uncommitted records of ``group`` per topic, retried while the coordinator loads."""
    for _ in range(100):
        try:
            by_partition = consumer_group_lag(kafka, kafka.topic(group), topics)
        except LagReadError:
            time.sleep(0.2)
            continue
        lags = Counter({t: 0 for t in topics})
        for (topic, _), lag in by_partition.items():
            lags[topic] += lag
        return dict(lags)
    raise TimeoutError(f"the lag of {group} could not be read")


def wait_committed(role: RoleProcess, kafka: KafkaSettings, group: str, topics: list[str]) -> None:
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while any(topic_lags(kafka, group, topics).values()):
        if not role.running:
            raise RuntimeError(f"{role.name} exited:\n{role.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{role.name} did not commit {topics}")
        time.sleep(0.25)


class Profiler:
    """``py-spy record`` of one process, started on demand, stopped (and saved) at the end."""

    def __init__(self, output: Path | None, duration_s: int) -> None:
        self.output = output
        self.duration_s = duration_s
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, pid: int) -> None:
        if self.output is None or self._process is not None:
            return
        py_spy = Path(sys.executable).with_name("py-spy")
        if not py_spy.exists():  # a profiling tool, not a dependency of feedline
            raise SystemExit(
                f"--profile-dir needs py-spy beside {sys.executable}: pip install py-spy"
            )
        command = [
            str(py_spy),
            "record",
            "-p",
            str(pid),
            "-d",
            str(self.duration_s),
            "--nonblocking",
            "--rate",
            "400",
            "--format",
            "raw",
            "-o",
            str(self.output),
        ]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # py-spy saves what it sampled
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


def measure(
    role: RoleProcess,
    kafka: KafkaSettings,
    group: str,
    total: int,
    downstream: list[str],
    profiler: Profiler,
) -> Rate:
    """Watch ``group`` until the engagements and then ``downstream`` topics are committed."""
    engagements = kafka.topic(ENGAGEMENTS.name)
    clock = ProgressClock(total)
    post_side: float | None = None
    cpu_at_first: float | None = None
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while time.monotonic() < deadline:
        if not role.running:
            raise RuntimeError(f"{role.name} exited:\n{role.log_tail()}")
        lags = topic_lags(kafka, group, [engagements, *downstream])
        if post_side is None:
            post_side = clock.observe(lags[engagements])
        if clock.first is not None and role.pid is not None:
            profiler.start(role.pid)
            if cpu_at_first is None:
                cpu_at_first = cpu_seconds(role.pid)
        if post_side is not None and not any(lags[t] for t in downstream):
            assert clock.first is not None and cpu_at_first is not None and role.pid is not None
            after_first = max(1, total - clock.first[1])
            cpu_ms = 1000 * (cpu_seconds(role.pid) - cpu_at_first) / after_first
            return Rate(post_side, post_side if not downstream else _rate_now(clock), cpu_ms)
        time.sleep(0.25)
    raise TimeoutError(f"{role.name} did not catch up within {PHASE_TIMEOUT_S} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rate_now(clock: ProgressClock) -> float:
    """``clock``'s rate, with now as the last commit (everything is committed)."""
    assert clock.first is not None
    began, at_first = clock.first
    if at_first == clock.total:
        began, at_first = clock.started, 0
    return (clock.total - at_first) / max(time.perf_counter() - began, 1e-9)


class Bench:
    """The broker, the workload and the runs; every run gets its own topics."""

    def __init__(self, args: argparse.Namespace, bootstrap: str, work: Path) -> None:
        self.args = args
        self.bootstrap = bootstrap
        self.work = work
        self.partitions = 0
        """Partitions of the engagements topic, as the broker reports them."""

    def topics(self, prefix: str) -> KafkaSettings:
        kafka = KafkaSettings(bootstrap_servers=self.bootstrap, topic_prefix=prefix)
        ensure_topics(kafka)
        engagements = kafka.topic(ENGAGEMENTS.name)
        self.partitions = partition_counts(kafka, [engagements])[engagements]
        return kafka

    def role(self, kafka: KafkaSettings, side: str) -> RoleProcess:
        (self.work / "tables").mkdir(exist_ok=True)  # faust creates only the last level
        env = {
            "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "FEEDLINE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "FEEDLINE_PROMPTS_DATA_DIR": str(self.work / "tables" / kafka.topic_prefix),
            "FEEDLINE_LOG_LEVEL": "WARNING",
        }
        if self.args.commit_interval_s is not None:
            env["FEEDLINE_PROMPTS_COMMIT_INTERVAL_S"] = str(self.args.commit_interval_s)
        if side == "ours":
            return RoleProcess(
                f"ours-{kafka.topic_prefix}", ["worker", "prompts"], env, self.work / "logs"
            )
        env["FEEDLINE_PROMPTS_APP_ID"] = RAW_GROUP
        return RoleProcess(
            f"raw-{kafka.topic_prefix}", [], env, self.work / "logs", "bench.raw_faust_counter"
        )

    def run(self, side: str, prefix: str, profiler: Profiler) -> Rate:
        kafka = self.topics(prefix)
        workload = make_workload(
            self.args.seed, self.args.members, self.args.posts, self.args.engagements
        )
        role = self.role(kafka, side)
        try:
            if side == "ours":
                role.start()
                publish(kafka, workload.state)
                state_topics = [kafka.topic(s.name) for s in (POSTS_CREATED, MEMBERS_PROFILE)]
                wait_committed(role, kafka, OURS_GROUP, state_topics)
                role.stop()
                publish(kafka, workload.engagements)
                downstream = [kafka.topic(ENGAGEMENTS_BY_MEMBER.name)]
                group = OURS_GROUP
            else:
                publish(kafka, [*workload.state, *workload.engagements])
                downstream, group = [], RAW_GROUP
            role.start()
            return measure(role, kafka, group, self.args.engagements, downstream, profiler)
        finally:
            profiler.stop()
            role.stop()


def report(bench: Bench, rates: dict[str, list[Rate]], order: list[tuple[str, Rate]]) -> None:
    args, settings = bench.args, PromptWorkerSettings()
    interval = args.commit_interval_s or settings.commit_interval_s
    config = {
        "engagements": args.engagements,
        "posts": args.posts,
        "members": args.members,
        "partitions": bench.partitions,
        "store": settings.store,
        "commit_interval_s": interval,
        "runs": "ABBA",
    }
    for run, (side, rate) in enumerate(order):
        emit(
            BENCH,
            {**config, "run": run, "side": side, "runs": None},
            "run_engagements_per_s",
            rate.all_work,
            "events/s",
        )
        emit(
            BENCH,
            {**config, "run": run, "side": side, "runs": None},
            "run_cpu_ms_per_engagement",
            rate.cpu_ms_per_engagement,
            "ms",
        )
        if side == "ours":
            emit(
                BENCH,
                {**config, "run": run, "side": side, "runs": None},
                "run_post_side_engagements_per_s",
                rate.post_side,
                "events/s",
            )
    raw = mean(r.all_work for r in rates["raw"])
    emit(
        BENCH,
        config,
        "prompt_processor_engagements_per_s",
        mean(r.all_work for r in rates["ours"]),
        "events/s",
        BASELINE,
        raw,
    )
    emit(
        BENCH,
        config,
        "prompt_processor_cpu_ms_per_engagement",
        mean(r.cpu_ms_per_engagement for r in rates["ours"]),
        "ms",
        BASELINE,
        mean(r.cpu_ms_per_engagement for r in rates["raw"]),
    )
    emit(
        BENCH,
        config,
        "prompt_processor_post_side_engagements_per_s",
        mean(r.post_side for r in rates["ours"]),
        "events/s",
        BASELINE,
        raw,
    )


def top_frames(raw_profile: Path, count: int = 25) -> str:
    """The frames with the most samples in a py-spy raw (collapsed) profile: own and total."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw_profile.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack:
            continue
        frames, n = stack.split(";"), int(weight)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples"]
    for title, counter in (("own", own), ("total", total)):
        lines.append(f"-- top {count} by {title} samples")
        lines += [f"{n / samples:6.1%}  {frame}" for frame, n in counter.most_common(count)]
    return "\n".join(lines)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: roles, broker, temp dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engagements", type=int, default=20_000)
    parser.add_argument("--posts", type=int, default=2_000)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--commit-interval-s", type=float, help="both sides (default: the processor's own, 2 s)"
    )
    parser.add_argument("--profile-dir", type=Path, help="one py-spy run of ours instead")
    parser.add_argument("--profile-s", type=int, default=60, help="longest py-spy sampling")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_exit)
    work = Path(tempfile.mkdtemp(prefix="feedline-bench-prompts-"))
    broker = LocalKafka(work / "kafka")
    try:
        bench = Bench(args, broker.start(), work)
        if args.profile_dir is not None:
            args.profile_dir.mkdir(parents=True, exist_ok=True)
            output = args.profile_dir / "ours.txt"
            rate = bench.run("ours", "profiled.", Profiler(output, args.profile_s))
            emit(
                BENCH,
                {"engagements": args.engagements, "profiled": True},
                "run_engagements_per_s",
                rate.all_work,
                "events/s",
            )
            sys.stderr.write(top_frames(output) + "\n")
            return
        rates: dict[str, list[Rate]] = {"raw": [], "ours": []}
        order = []
        for run, side in enumerate(ABBA):
            rate = bench.run(side, f"{side}{run}.", Profiler(None, 0))
            rates[side].append(rate)
            order.append((side, rate))
        report(bench, rates, order)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
