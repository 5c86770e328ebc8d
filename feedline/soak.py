"""The chaos soak: the real product under kill -9 and broker restarts, checked against truth.

``feedline soak`` (``make soak``) starts a broker with ``feedline kafka start``, creates the
topics with ``feedline topics create`` and runs the roles as ``feedline worker prompts`` (x2),
``feedline worker embed`` (x2) and ``feedline serve`` (x1; more replicas with
``serve_replicas``, each with its own snapshot directory and index group: replicas share nothing
but Kafka), each its own process. A seeded workload
(``feedline.soak_workload``) publishes new posts, edits, deletes, engagements and member
profiles through the producer client, keeping the ground truth of what was acknowledged.
Meanwhile a killer SIGKILLs a random role every 10-40 s and starts it again, and a few times
SIGKILLs the broker and restarts it on its data. Then the workload stops, the pipeline
catches up (every group at zero lag, the index caught up and quiet), and
``feedline.soak_checks`` compares the index and the compacted topics with the truth. The
last line printed is one JSON object with the counts (all must be 0), the kill cycles per
role and the broker restarts.

A fixed schedule (``victims``) can also scale: ``+embed-3`` starts a role that was not there
(for a worker: then waits until its group settles, timed; for a query-service replica: times
it to ready and checks it did not say ready before catching up, see ``feedline.soak_scaling``),
``-prompts-2`` stops one for good with SIGTERM (a scale-down), a bare name kills -9 and
restarts. After catch-up every replica is checked against the truth, their answers are
compared member by member, and the worker groups must show no ownership warning.

Example::

    summary = run_soak(SoakConfig(cycles=6, victims=("prompts-1", "broker", "embed-1")))
    assert summary["lost_posts"] == 0
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from feedline.errors import FeedlineError
from feedline.processes import RoleProcess
from feedline.soak_checks import check
from feedline.soak_scaling import (
    LateReady,
    Settled,
    late_replica,
    ownership_warnings,
    replica_mismatches,
    settle,
)
from feedline.soak_workload import SoakWorkload
from service.client import QueryClient
from streams.errors import ProduceError
from streams.lag import LagReadError, consumer_group_lag
from streams.local_broker import free_port, pid_alive
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from streams.topics import ENGAGEMENTS_BY_MEMBER, PRODUCER_TOPICS, PROMPTS_MEMBERS, PROMPTS_POSTS

log = logging.getLogger(__name__)
BROKER = "broker"
ROLE_KINDS = ("prompts", "embed", "serve")
TICKS_IN_FLIGHT = 3


class SoakError(FeedlineError):
    """The soak could not set up or tear down its stack."""


@dataclass(frozen=True)
class SoakConfig:
    """How long, how hard and from which seed the soak runs."""

    seed: int = 7
    cycles: int = 100
    """Role kill cycles: each SIGKILLs one role and starts it again."""
    broker_restarts: int = 4
    """Broker kill cycles on top, spread evenly among the role kills."""
    kill_every_s: tuple[float, float] = (10.0, 40.0)
    broker_down_s: tuple[float, float] = (2.0, 10.0)
    events_per_s: float = 8.0
    members: int = 40
    partitions: int = 4
    prompt_workers: int = 2
    embed_workers: int = 2
    serve_replicas: int = 1
    catch_up_timeout_s: float = 900.0
    quiet_s: float = 15.0
    """How long the topics must stay unchanged at zero lag before the checks run."""
    victims: tuple[str, ...] | None = None
    """A fixed order of steps instead of random kills: a role name (kill -9 and restart),
    ``broker``, ``+name`` (start a new role: scale up) or ``-name`` (SIGTERM it for good:
    scale down)."""
    work_dir: Path | None = None
    """Keep the broker data and role logs here (default: a temporary directory, removed
    after a clean run)."""

    def roles(self) -> list[str]:
        """The role process names at the start, e.g. ``prompts-1``, ``embed-2``, ``serve-1``."""
        return [
            *(f"prompts-{i + 1}" for i in range(self.prompt_workers)),
            *(f"embed-{i + 1}" for i in range(self.embed_workers)),
            *(f"serve-{i + 1}" for i in range(self.serve_replicas)),
        ]

    def __post_init__(self) -> None:
        """A schedule that cannot run fails here, before a broker or role starts."""
        running = set(self.roles())
        for n, step in enumerate(self.victims or (), start=1):
            if step == BROKER:
                continue
            name = step.lstrip("+-")
            kind, _, number = name.partition("-")
            if kind not in ROLE_KINDS or not number.isdigit() or len(step) - len(name) > 1:
                raise SoakError(
                    f"step {n} {step!r}: expected broker, NAME, +NAME or -NAME with NAME "
                    "prompts-N, embed-N or serve-N"
                )
            if step[0] == "+" and name in running:
                raise SoakError(f"step {n} {step!r}: {name} runs already at that point")
            if step[0] != "+" and name not in running:
                raise SoakError(f"step {n} {step!r}: {name} does not run at that point")
            if step[0] == "+":
                running.add(name)
            elif step[0] == "-":
                running.remove(name)


@dataclass
class _Tally:
    kills: Counter[str] = field(default_factory=Counter)
    unexpected_exits: Counter[str] = field(default_factory=Counter)
    broker_restarts: int = 0
    rebalances: dict[str, Settled] = field(default_factory=dict)
    """Scaling step of a worker (``+embed-3``) → how its group settled."""
    late_replicas: dict[str, LateReady] = field(default_factory=dict)


def run_soak(config: SoakConfig) -> dict[str, Any]:
    """Run the soak; returns the summary printed as its JSON line."""
    work = config.work_dir or Path(tempfile.mkdtemp(prefix="feedline-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    stack = _Stack(config, work)
    ok = False
    try:
        summary = stack.run()
        ok = summary["caught_up"] and not any(summary[k] for k in LOSS_COUNTS)
        return summary
    finally:
        stack.stop()
        if ok and config.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log.warning("soak logs and broker data kept in %s", work)


LOSS_COUNTS = (
    "lost_posts",
    "resurrected_posts",
    "stale_posts",
    "missing_members",
    "compacted_keys_not_newest_last",
    "dlq_records",
    "replica_answer_mismatches",
    "ownership_warnings",
    "unsettled_rebalances",
    "late_ready_violations",
)


class _Stack:
    """The broker, the roles, the workload and the killer of one soak."""

    def __init__(self, config: SoakConfig, work: Path) -> None:
        self.config = config
        self.work = work
        self.rng = random.Random(config.seed)
        self.tally = _Tally()
        self.workload = SoakWorkload(config.seed, config.members)
        self.ports: dict[str, int] = {}
        self.kafka = KafkaSettings(
            bootstrap_servers=self._start_broker(), partitions=config.partitions
        )
        self.env = self._env()
        self.roles = {name: self._role(name) for name in config.roles()}
        self._stop_workload = threading.Event()
        self._workload_error: BaseException | None = None

    def run(self) -> dict[str, Any]:
        began = time.monotonic()
        self._feedline("topics", "create")
        for role in self.roles.values():
            role.start()
        self._wait(self._service_ready, 300, "every query-service replica to be ready")
        publisher = threading.Thread(target=self._publish, name="soak-workload", daemon=True)
        publisher.start()
        self._kill_cycles()
        self._stop_workload.set()
        publisher.join(timeout=300)
        if self._workload_error is not None:
            raise SoakError(f"the workload failed: {self._workload_error}")
        self._revive()
        caught_up_at = time.monotonic()
        caught_up = self._catch_up()
        catch_up_s = time.monotonic() - caught_up_at
        truth = self.workload.truth
        report = check(self.kafka, self.urls(), truth, self.kafka.topic("feedline-prompts"))
        mismatched = replica_mismatches(self.urls(), sorted(truth.members))
        owners = ownership_warnings(self.kafka)
        rebalances = self.tally.rebalances
        late = self.tally.late_replicas
        summary: dict[str, Any] = {
            "soak": "chaos",
            **report.counts(),
            "replica_answer_mismatches": len(mismatched),
            "ownership_warnings": len(owners),
            "unsettled_rebalances": sum(1 for s in rebalances.values() if s.seconds is None),
            "late_ready_violations": sum(1 for r in late.values() if r.violation),
            "caught_up": caught_up,
            "role_kill_cycles": sum(self.tally.kills.values()),
            "kills": dict(sorted(self.tally.kills.items())),
            "broker_restarts": self.tally.broker_restarts,
            "unexpected_exits": dict(sorted(self.tally.unexpected_exits.items())),
            "roles_at_end": sorted(self.roles),
            "rebalance_s": {step: s.seconds for step, s in rebalances.items()},
            "late_replicas": {name: asdict(r) for name, r in late.items()},
            "events_published": self.workload.truth.events,
            "posts": len(self.workload.truth.revisions),
            "deleted_posts": len(self.workload.truth.deleted),
            "members": len(self.workload.truth.members),
            "catch_up_s": round(catch_up_s, 1),
            "duration_s": round(time.monotonic() - began, 1),
            "seed": self.config.seed,
        }
        if any(summary[k] for k in LOSS_COUNTS):
            defects = {
                **report.examples(),
                "replicas_differ_for": mismatched[:5],
                "ownership": owners,
                "rebalances": {step: asdict(s) for step, s in rebalances.items()},
            }
            log.error("soak found defects: %s", json.dumps(defects))
        return summary

    def stop(self) -> None:
        self._stop_workload.set()
        for role in self.roles.values():
            role.kill()  # the checks are done: nothing left to flush or commit
        try:
            self._feedline("kafka", "stop", "--data-dir", str(self.work / "kafka"))
        except SoakError as error:
            log.warning("stopping the soak broker: %s", error)

    # --- the broker, through the CLI ------------------------------------------------------

    def _start_broker(self) -> str:
        out = self._feedline("kafka", "start", "--data-dir", str(self.work / "kafka"))
        return out.strip().rsplit("=", 1)[-1]

    def _kill_broker(self) -> None:
        state = json.loads((self.work / "kafka" / "broker.json").read_text())
        os.kill(int(state["pid"]), signal.SIGKILL)
        _wait_gone(int(state["pid"]))

    def _feedline(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "feedline", *args],
            env={**os.environ, **getattr(self, "env", {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise SoakError(f"feedline {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    # --- the roles ------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {
            "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "FEEDLINE_KAFKA_PARTITIONS": str(self.config.partitions),
            "FEEDLINE_LOG_LEVEL": "INFO",
            "FEEDLINE_PROMPTS_LOG_LEVEL": "INFO",  # rebalances and seeks, for a post-mortem
            "FEEDLINE_INDEX_SNAPSHOT_INTERVAL_S": "10",
        }

    def urls(self) -> list[str]:
        """The query-service replicas running now."""
        return [self._url(name) for name in sorted(self.roles) if name.startswith("serve")]

    def _url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def _role(self, name: str) -> RoleProcess:
        kind = name.split("-")[0]
        logs = self.work / "logs"
        if kind == "prompts":
            env = {
                **self.env,
                "FEEDLINE_PROMPTS_DATA_DIR": str(self.work / name),
                "FEEDLINE_PROMPTS_INSTANCE_ID": name,  # static membership: no rebalance wait
            }
            return RoleProcess(name, ["worker", "prompts"], env, logs)
        if kind == "embed":
            env = {**self.env, "FEEDLINE_EMBED_INSTANCE_ID": name}
            return RoleProcess(name, ["worker", "embed"], env, logs)
        if kind != "serve":
            raise SoakError(f"unknown role {name!r}: prompts-N, embed-N or serve-N")
        port = self.ports.setdefault(name, free_port())
        env = {
            **self.env,
            "FEEDLINE_INDEX_SNAPSHOT_DIR": str(self.work / name / "snapshots"),
            "FEEDLINE_INDEX_CONSUMER_GROUP": f"feedline-index-{name}",
        }
        return RoleProcess(name, ["serve", "--port", str(port)], env, logs)

    def _kill_cycles(self) -> None:
        config = self.config
        victims = list(config.victims or [])
        total = len(victims) or config.cycles + config.broker_restarts
        broker_at = _spread(config.broker_restarts, total) if not victims else set()
        for cycle in range(total):
            time.sleep(self.rng.uniform(*config.kill_every_s))
            self._revive()
            victim = victims[cycle] if victims else None
            if victim == BROKER or (victim is None and cycle in broker_at):
                self._restart_broker()
                continue
            if victim is not None and victim[0] in "+-":
                self._scale(victim)
                continue
            name = victim or self.rng.choice(sorted(self.roles))
            self.roles[name].kill()
            self.tally.kills[name] += 1
            self.roles[name].start()
            log.info("cycle %d: killed and restarted %s", cycle + 1, name)

    def _scale(self, step: str) -> None:
        """``+name``: start a new role; ``-name``: SIGTERM one for good. Workers: time the
        group to steady state; a new replica: time it to ready."""
        name, kind = step[1:], step[1:].split("-")[0]
        if step[0] == "+":
            if name in self.roles:
                raise SoakError(f"{step}: {name} runs already")
            self.roles[name] = role = self._role(name)
            if kind == "serve":
                ready = late_replica(self.kafka, self._url(name), role.start)
                self.tally.late_replicas[name] = ready
                log.info("%s: replica ready after %s s (%s)", step, ready.seconds, ready.start)
                return
            role.start()
        else:
            if name not in self.roles:
                raise SoakError(f"{step}: {name} does not run")
            self.roles.pop(name).stop()
            if kind == "serve":
                return
        running = sum(1 for n in self.roles if n.startswith(f"{kind}-"))
        settled = settle(self.kafka, kind, running)
        self.tally.rebalances[step] = settled
        log.info("%s: %s group settled after %s s", step, kind, settled.seconds)

    def _restart_broker(self) -> None:
        self._kill_broker()
        time.sleep(self.rng.uniform(*self.config.broker_down_s))
        self._start_broker()
        self.tally.broker_restarts += 1
        log.info("broker killed and restarted on its data (%d)", self.tally.broker_restarts)

    def _revive(self) -> None:
        """Start again any role that exited by itself (counted: roles must survive faults)."""
        for name, role in self.roles.items():
            if not role.running:
                log.warning("%s exited by itself; restarting it\n%s", name, role.log_tail(1500))
                self.tally.unexpected_exits[name] += 1
                role.start()

    # --- workload and catch-up ------------------------------------------------------------

    def _publish(self) -> None:
        batch_s = 0.5
        size = max(1, round(self.config.events_per_s * batch_s))
        try:
            with EventProducer(self.kafka) as producer:
                while not self._stop_workload.is_set():
                    began = time.monotonic()
                    batch = self.workload.next_batch(size, int(time.time() * 1000))
                    self._deliver(producer, batch)
                    self.workload.delivered(batch)
                    time.sleep(max(0.0, batch_s - (time.monotonic() - began)))
        except BaseException as error:
            self._workload_error = error

    def _deliver(self, producer: EventProducer, batch: list[Any]) -> None:
        """Publish until the broker acknowledged the whole batch (a retry after a failed
        flush repeats records, which the pipeline's version rules make harmless)."""
        while True:
            for event in batch:
                producer.publish(event)
            try:
                producer.flush(timeout_s=120)
                return
            except ProduceError as error:
                log.warning("workload batch not acknowledged, sending it again: %s", error)

    def _catch_up(self) -> bool:
        """Wait until every group is at zero lag and the index caught up, and the topics
        stayed so for ``quiet_s`` (debounced member changes flushed); False on timeout."""
        deadline = time.monotonic() + self.config.catch_up_timeout_s
        quiet_since: float | None = None
        last: tuple[int, ...] | None = None
        while time.monotonic() < deadline:
            self._revive()
            reading = self._lag_reading()
            if reading is not None and reading[0] == 0:
                if reading != last:
                    quiet_since, last = time.monotonic(), reading
                elif time.monotonic() - (quiet_since or 0) >= self.config.quiet_s:
                    return True
            else:
                quiet_since, last = None, None
            time.sleep(1.0)
        return False

    def _lag_reading(self) -> tuple[int, ...] | None:
        """(total lag, index lag, applied updates): the lag of the prompt and embedding
        groups on their inputs plus the index's, and what the index applied; None while
        something cannot be read (a role or the broker still starting)."""
        kafka = self.kafka
        inputs = [kafka.topic(s.name) for s in PRODUCER_TOPICS]
        prompts = [kafka.topic(s.name) for s in (PROMPTS_POSTS, PROMPTS_MEMBERS)]
        by_member = [kafka.topic(ENGAGEMENTS_BY_MEMBER.name)]
        try:
            lag = sum(consumer_group_lag(kafka, kafka.topic("feedline-prompts"), inputs).values())
            lag += sum(consumer_group_lag(kafka, kafka.topic("feedline-embed"), prompts).values())
            # ticks land on every partition of engagements.by-member all the time: a couple
            # per partition are always in flight between two commits
            ticking = consumer_group_lag(kafka, kafka.topic("feedline-prompts"), by_member)
            lag += sum(max(0, n - TICKS_IN_FLIGHT) for n in ticking.values())
            replicas = []
            for url in self.urls():
                with QueryClient(url) as client:
                    replicas.append(client.stats())
        except (LagReadError, httpx.HTTPError, ValueError) as error:
            log.info("catch-up reading failed (retrying): %s", error)
            return None
        index_lag = sum(s.lag + (0 if s.ready else 1) for s in replicas)
        return (lag + index_lag, index_lag, *(s.applied for s in replicas))

    def _service_ready(self) -> bool:
        urls = self.urls()
        for url in urls:
            with QueryClient(url) as client:
                if not client.is_ready():  # False while it is not listening
                    return False
        return bool(urls)

    def _wait(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            self._revive()
            time.sleep(1.0)
        raise SoakError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _spread(count: int, cycles: int) -> set[int]:
    """``count`` distinct cycle indices spread evenly over ``cycles`` (the first only when
    every cycle is one).

    >>> sorted(_spread(2, 10))
    [3, 7]
    """
    if count >= cycles:
        return set(range(cycles))
    step = cycles / (count + 1)  # >= 1, so int(x + 0.5) keeps the indices apart
    return {int(step * (i + 1) + 0.5) for i in range(count)}


def _wait_gone(pid: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    raise SoakError(f"process {pid} still alive {timeout_s:.0f}s after SIGKILL")


def config_json(config: SoakConfig) -> str:
    """The configuration as one JSON line (logged before the run)."""
    return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()})
