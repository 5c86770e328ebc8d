"""``feedline demo``: the whole system on the embedded defaults, end to end.

1. start a real Kafka broker (local jars) and the three roles as processes;
2. publish the synthetic world (profiles, posts, engagements) through Kafka and wait until the
   index has caught up (all posts and members embedded, every consumer group at zero lag);
3. publish ``live_posts`` more posts one by one, stamped with the wall clock, and time how long
   each takes to become visible in the index (freshness);
4. ask the feed of every member and score it: relevance@10 is the share of feed items on one
   of the member's interests, against the share a random feed would get;
5. restart the query service from its snapshot; export the engagements, train the GR ranker on
   them, restart the service with it, and score the GR-ranked feeds the same way;
6. export a dual-encoder training set from the topics, fine-tune a few steps, and roll the new
   model out to the running service (shadow index, atomic switch) while asking feeds.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from confluent_kafka import KafkaException
from rich.console import Console

from feedline.demo_analytics import export_and_query, restart_service
from feedline.demo_ranking import train_and_rank
from feedline.demo_report import print_member_feeds
from feedline.demo_rollout import fine_tune_and_roll_out
from feedline.errors import FeedlineError
from feedline.processes import RoleGroup, pipeline_roles
from feedline.world import World, WorldConfig, event_time_ms, generate_world
from schemas import Engagement, MemberProfile, PostCreated
from service.client import QueryClient
from streams.lag import consumer_group_lag
from streams.local_broker import LocalKafka, free_port
from streams.producer import EventProducer
from streams.prompt_settings import PromptWorkerSettings
from streams.settings import KafkaSettings
from streams.topics import (
    ENGAGEMENTS,
    ENGAGEMENTS_BY_MEMBER,
    MEMBERS_PROFILE,
    POSTS_CREATED,
    POSTS_DELETED,
    PROMPTS_MEMBERS,
    PROMPTS_POSTS,
    ensure_topics,
)

console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


class DemoError(FeedlineError):
    """The demo could not finish (a role died or a deadline passed)."""


@dataclass(frozen=True)
class DemoConfig:
    """World size, the live phase, and deadlines."""

    seed: int = 7
    members: int = 200
    authors: int = 60
    posts: int = 1000
    live_posts: int = 30
    live_interval_s: float = 0.25
    keep_running: bool = False
    analytics_dir: Path = Path(".feedline/demo/analytics")
    """Where the demo exports its index snapshots for DuckDB (kept after the demo)."""
    timeout_s: float = 900.0
    show_members: int = 3


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run the demo; returns the summary printed as the last line."""
    workdir = Path(tempfile.mkdtemp(prefix="feedline-demo-"))
    ok = False
    try:
        with LocalKafka(workdir / "kafka") as broker:
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
            ensure_topics(kafka)
            summary = _run_on(kafka, broker.bootstrap_servers, workdir, config)
            ok = True
            return summary
    finally:
        if ok and not config.keep_running:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            console.print(f"[red]demo failed; logs kept in {workdir}[/red]")


def _run_on(
    kafka: KafkaSettings, bootstrap: str, workdir: Path, config: DemoConfig
) -> dict[str, Any]:
    port = free_port()
    metrics_ports = {"prompts": free_port(), "embed": free_port()}
    env = {
        "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FEEDLINE_LOG_LEVEL": "INFO",
        "FEEDLINE_PROMPTS_METRICS_PORT": str(metrics_ports["prompts"]),
        "FEEDLINE_EMBED_METRICS_PORT": str(metrics_ports["embed"]),
        "FEEDLINE_PROMPTS_DATA_DIR": str(workdir / "prompts"),
        "FEEDLINE_INDEX_SNAPSHOT_DIR": str(workdir / "snapshots"),
        "FEEDLINE_INDEX_SNAPSHOT_INTERVAL_S": "10",
    }
    world = generate_world(
        WorldConfig(
            seed=config.seed,
            members=config.members,
            authors=config.authors,
            posts=config.posts + config.live_posts,
        )
    )
    backfill, live = _split_live(world, config.live_posts)
    with (
        pipeline_roles(env, workdir / "logs", port) as roles,
        QueryClient(f"http://127.0.0.1:{port}") as client,
    ):
        _wait(lambda: client.is_ready(), "the query service to start", roles, 180)
        started = time.monotonic()
        published = _publish(kafka, backfill)
        console.print(f"published {published} events; waiting for the index to catch up…")
        settled = Settled(client, _settle_seconds())
        _wait(
            lambda: _caught_up(kafka, client, config.posts, config.members) and settled(),
            "the backfill to be indexed",
            roles,
            config.timeout_s,
        )
        backfill_s = time.monotonic() - started - settled.seconds
        freshness = _live_phase(kafka, client, live, config, roles)
        summary = _evaluate(client, world, freshness, backfill_s, published, config)
        restart_s, start = restart_service(
            roles["serve"], client, lambda check, what: _wait(check, what, roles, 180)
        )
        summary.update(restart_ready_s=round(restart_s, 1), restart_start=start)
        summary.update(
            train_and_rank(
                console,
                kafka,
                workdir,
                roles["serve"],
                client,
                world,
                lambda check, what: _wait(check, what, roles, 180),
            )
        )
        summary.update(
            fine_tune_and_roll_out(
                console,
                kafka,
                workdir,
                client,
                world,
                lambda check, what: _wait(check, what, roles, 600),
            )
        )
        if config.keep_running:
            _hold(port, bootstrap, workdir, metrics_ports)
    export_and_query(
        console, workdir / "snapshots", config.analytics_dir, world.members[0]["member_id"]
    )
    return summary


def _split_live(world: World, live_posts: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """World records without the last ``live_posts`` posts (and their engagements), rebased
    so the newest event happened just now; and those held-back posts."""
    held = {p["post_id"] for p in world.posts[len(world.posts) - live_posts :]}
    records = [r for r in world.records() if r["value"].get("post_id") not in held]
    newest = max(event_time_ms(r["value"]) for r in records)
    shift = int(time.time() * 1000) - newest - 1_000
    for record in records:
        _shift_times(record["value"], shift)
    live = [p for p in world.posts if p["post_id"] in held]
    return records, live


def _shift_times(value: dict[str, Any], shift: int) -> None:
    for field in ("ts_ms", "created_at_ms", "updated_at_ms"):
        if field in value:
            value[field] += shift


PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    POSTS_CREATED.name: PostCreated.model_validate,
    ENGAGEMENTS.name: Engagement.model_validate,
    MEMBERS_PROFILE.name: MemberProfile.model_validate,
}


def _publish(kafka: KafkaSettings, records: list[dict[str, Any]]) -> int:
    with EventProducer(kafka) as producer:
        for record in records:
            producer.publish(PARSERS[record["topic"]](record["value"]))
    return len(records)


class Settled:
    """True once the index applied nothing new for ``seconds``: member changes held back by
    the prompt processor's debounce are published up to a debounce period after the last
    event, after every lag already read zero."""

    def __init__(self, client: QueryClient, seconds: float) -> None:
        self.client = client
        self.seconds = seconds
        self._applied = -1
        self._since = time.monotonic()

    def __call__(self) -> bool:
        applied = self.client.stats().applied
        if applied != self._applied:
            self._applied, self._since = applied, time.monotonic()
        return time.monotonic() - self._since >= self.seconds


def _settle_seconds() -> float:
    settings = PromptWorkerSettings()
    return settings.member_debounce_s + settings.tick_interval_s + 1.0


def _caught_up(kafka: KafkaSettings, client: QueryClient, posts: int, members: int) -> bool:
    stats = client.stats()
    if stats.posts < posts or stats.members < members or stats.lag:
        return False
    prompt_inputs = [
        POSTS_CREATED,
        POSTS_DELETED,
        ENGAGEMENTS,
        MEMBERS_PROFILE,
        ENGAGEMENTS_BY_MEMBER,
    ]
    lags = [
        consumer_group_lag(
            kafka, kafka.topic("feedline-prompts"), [kafka.topic(s.name) for s in prompt_inputs]
        ),
        consumer_group_lag(
            kafka,
            kafka.topic("feedline-embed"),
            [kafka.topic(s.name) for s in (PROMPTS_POSTS, PROMPTS_MEMBERS)],
        ),
    ]
    return all(v == 0 for lag in lags for v in lag.values()) and client.stats().lag == 0


def _live_phase(
    kafka: KafkaSettings,
    client: QueryClient,
    live: list[dict[str, Any]],
    config: DemoConfig,
    roles: RoleGroup,
) -> list[float]:
    created: dict[str, int] = {}
    with EventProducer(kafka, linger_ms=0) as producer:
        for post in live:
            post = {**post, "created_at_ms": int(time.time() * 1000)}
            producer.publish(PostCreated.model_validate(post))
            producer.flush()
            created[post["post_id"]] = post["created_at_ms"]
            time.sleep(config.live_interval_s)
    visible: dict[str, int] = {}

    def all_visible() -> bool:
        for post_id in created.keys() - visible.keys():
            info = client.post(post_id)
            if info is not None:
                visible[post_id] = info.indexed_at_ms
        return len(visible) == len(created)

    _wait(all_visible, "the live posts to become visible", roles, 120)
    return [(visible[p] - created[p]) / 1000 for p in created]


def _evaluate(
    client: QueryClient,
    world: World,
    freshness: list[float],
    backfill_s: float,
    published: int,
    config: DemoConfig,
) -> dict[str, Any]:
    relevance, random_relevance, own_posts = [], [], 0
    feeds = {}
    for member in world.members:
        member_id = member["member_id"]
        items = client.feed(member_id, k=10).items
        feeds[member_id] = items
        relevance.append(world.relevance_at_k(member_id, [i.post_id for i in items]))
        random_relevance.append(world.random_relevance(member_id))
        own_posts += sum(1 for i in items if i.author_id == member_id)
    print_member_feeds(console, world, feeds, config.show_members)
    stats = client.stats()
    return {
        "posts_indexed": stats.posts,
        "members": stats.members,
        "relevance_at_10": round(float(np.mean(relevance)), 4),
        "random_relevance_at_10": round(float(np.mean(random_relevance)), 4),
        "freshness_p50_s": round(float(np.percentile(freshness, 50)), 3) if freshness else None,
        "freshness_p99_s": round(float(np.percentile(freshness, 99)), 3) if freshness else None,
        "live_posts": len(freshness),
        "own_posts_in_feeds": own_posts,
        "events_published": published,
        "backfill_s": round(backfill_s, 1),
    }


def _wait(condition: Callable[[], bool], what: str, roles: RoleGroup, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with console.status(f"waiting for {what}…"):
        while time.monotonic() < deadline:
            if failed := roles.failed():
                tails = "\n".join(f"--- {n} ---\n{roles[n].log_tail()}" for n in failed)
                raise DemoError(
                    f"role(s) {', '.join(failed)} exited while waiting for {what}:\n{tails}"
                )
            with contextlib.suppress(httpx.HTTPError, KafkaException):  # not up yet: poll again
                if condition():
                    return
            time.sleep(0.5)
    raise DemoError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _hold(port: int, bootstrap: str, workdir: Path, metrics_ports: dict[str, int]) -> None:
    console.print(
        f"\n[bold]The stack is up[/bold] (Ctrl-C to stop). Kafka: {bootstrap}; "
        f"logs: {workdir}/logs\n"
        f"  curl -s http://127.0.0.1:{port}/v1/stats\n"
        f"  curl -s 'http://127.0.0.1:{port}/v1/members/m00001/feed?k=10'\n"
        f"  curl -s -XPOST http://127.0.0.1:{port}/v1/retrieve -H 'content-type: application/json' "
        '-d \'{"text": "kubernetes cost optimisation", "k": 5}\'\n'
        f"  curl -s -XPOST http://127.0.0.1:{port}/v1/rank -H 'content-type: application/json' "
        '-d \'{"member_id": "m00001", "post_ids": ["p000001", "p000002"]}\'\n'
        f"  curl -s http://127.0.0.1:{port}/metrics | grep feedline_\n"
        f"  FEEDLINE_KAFKA_BOOTSTRAP_SERVERS={bootstrap} feedline status "
        f"--service http://127.0.0.1:{port} "
        f"--prompts-metrics http://127.0.0.1:{metrics_ports['prompts']}/metrics "
        f"--embed-metrics http://127.0.0.1:{metrics_ports['embed']}/metrics"
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
