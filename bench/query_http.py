"""The query API over real HTTP against the in-process search on the same index.

A child process builds an index of ``--size`` synthetic posts (``bench.index_workload``) and
``--members`` members, measures the in-process search (``IndexStore.search`` with the filter
the route builds: the member's own posts excluded), writes those latencies and the expected
top-k ids to a file, then serves the real routes (``service.app.build_api``) with uvicorn,
as ``feedline serve`` does. The parent sends, over keep-alive HTTP/1.1 (``http.client``):

- ``GET /v1/members/{id}/feed?k=10`` (``feed``);
- ``POST /v1/retrieve`` with ``{"member_id": .., "k": 10}`` (``retrieve``);

first one at a time (``concurrency 1``), then from ``--concurrency`` threads at once, each
with its own connection. Latency is request written → response body read, in the client.
Baseline, same run: the in-process search, one at a time and from as many threads (the store
serialises searches with its lock, as the service does). Every HTTP answer must list the
same posts in the same order as the in-process search (``results_identical``).

Issue 15's goal, at 200k posts on IVF: HTTP p50 ≤ 2x the in-process search, p99 ≤ 10 ms.

    python -m bench.query_http --size 200000 --backends flat,ivf
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bench.common import emit
from bench.index_workload import MODEL, bench_settings, corpus, filled_store
from bench.vectors import queries_like
from index_store import IndexStore, PostFilter, StoreUpdate
from schemas import EmbeddingUpdate

BENCH = "query_http"
K = 10
DIM = 384
WARMUP = 50
ENDPOINTS = ("feed", "retrieve")


def member_id(i: int) -> str:
    """Bench members are named after the authors of the synthetic posts, so the route's
    "exclude own posts" filter excludes some posts, as for a real member."""
    return f"a{i}"


# --- the server (child process) --------------------------------------------------------------


@dataclass
class BenchIndex:
    """The index both processes build from the same seeds, and each member's query."""

    store: IndexStore
    vectors: np.ndarray  # (members, dim)
    filters: list[PostFilter]

    def search(self, i: int) -> list[str]:
        """Member ``i``'s feed in process: what the route computes, without HTTP."""
        return [hit.post_id for hit, _ in self.store.search(self.vectors[i], K, self.filters[i])]


def build_index(backend: str, size: int, members: int) -> BenchIndex:
    """``size`` posts and ``members`` members; each member's filter excludes their own posts,
    as the feed route's does."""
    settings = bench_settings(backend)
    store, _ = filled_store(settings, corpus(size, DIM, seed=3))
    vectors = queries_like(members, DIM, seed=3)
    store.apply_batch(
        [
            StoreUpdate("member", member_id(i), _member_update(member_id(i), row))
            for i, row in enumerate(vectors)
        ],
        live=False,
    )
    filters = [PostFilter(exclude_authors=frozenset({member_id(i)})) for i in range(members)]
    return BenchIndex(store, vectors, filters)


def serve(args: argparse.Namespace) -> None:
    """Build the index and serve the real routes on it until SIGTERM."""
    import uvicorn
    from prometheus_client import CollectorRegistry

    from processors.engagement_history import MemberHistories
    from service.app import build_api
    from service.feeds.history_feed import HistoryFeed
    from service.feeds.index_feed import IndexFeed
    from service.metrics import ServiceMetrics
    from service.ranker import Ranker
    from service.ranker_settings import RankerSettings
    from service.serving import ServingModel, ServingSlot
    from service.settings import ServiceSettings
    from service.state import ServiceState
    from streams.settings import KafkaSettings

    index = build_index(args.backend, args.size, args.members)
    kafka = KafkaSettings()
    metrics = ServiceMetrics(CollectorRegistry())
    feed = IndexFeed(kafka, index.store.settings, metrics, dim=DIM, model_version=MODEL)
    histories = MemberHistories(8)
    history_feed = HistoryFeed(kafka, histories)
    feed.ready.set()
    history_feed.ready.set()
    ranker = Ranker.load(RankerSettings(), index.store, histories)
    slot = ServingSlot(ServingModel(index.store, _NoEncoder(), ranker))
    app = build_api()
    app.state.service = ServiceState(ServiceSettings(), slot, feed, history_feed, metrics, ())
    metrics.bind(lambda: slot.current.store, lambda: True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", http=args.http)


class _NoEncoder:
    """The bench asks by member only; a text query would embed with a real model."""

    model_version = MODEL
    dim = DIM

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("the HTTP bench sends no text queries")


def _member_update(entity_id: str, vector: np.ndarray) -> EmbeddingUpdate:
    return EmbeddingUpdate(
        entity="member",
        entity_id=entity_id,
        version=1,
        dim=DIM,
        vector_b64=EmbeddingUpdate.encode_vector(vector),
        model_version=MODEL,
        prompt_version="bench-1",
        event_time_ms=1_760_000_000_000,
        prompted_at_ms=1_760_000_000_000,
        embedded_at_ms=1_760_000_000_000,
    )


def _request_order(requests: int, members: int) -> list[int]:
    """Which member each request asks for: a seeded shuffle, the same for every phase."""
    rng = np.random.default_rng(7)
    return [int(i) for i in rng.integers(0, members, size=WARMUP + requests)]


class Timed(NamedTuple):
    """Per-request latencies and the wall time of the whole phase."""

    seconds: np.ndarray
    wall_s: float
    cpu_s: float
    """CPU time of the process that answered (the server over HTTP; the client excluded)."""

    @property
    def rate(self) -> float:
        """Requests per second."""
        return len(self.seconds) / self.wall_s

    @property
    def cpu_ms_per_request(self) -> float:
        """CPU milliseconds per answer: unlike latency, not inflated by waiting for a core."""
        return self.cpu_s * 1000 / len(self.seconds)


def _timed_threads(
    calls: list[Callable[[int], object]], order: list[int], cpu_clock: Callable[[], float]
) -> Timed:
    """``order[WARMUP:]`` split round-robin over one thread per entry of ``calls``; thread
    ``t`` uses ``calls[t]`` (its own connection, over HTTP); the threads start together."""
    threads = len(calls)
    work = order[WARMUP:]
    seconds: list[list[float]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def run(t: int) -> None:
        start.wait()
        for i in work[t::threads]:
            started = time.perf_counter()
            calls[t](i)
            seconds[t].append(time.perf_counter() - started)

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    began, cpu_began = time.perf_counter(), cpu_clock()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall_s, cpu_s = time.perf_counter() - began, cpu_clock() - cpu_began
    return Timed(np.array([s for per_thread in seconds for s in per_thread]), wall_s, cpu_s)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the client (parent process) -------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection; returns the post ids of each answer."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json"}

    def feed(self, member: str) -> list[str]:
        self.connection.request("GET", f"/v1/members/{member}/feed?k={K}")
        return self._ids()

    def retrieve(self, member: str) -> list[str]:
        body = json.dumps({"member_id": member, "k": K})
        self.connection.request("POST", "/v1/retrieve", body=body, headers=self.headers)
        return self._ids()

    def _ids(self) -> list[str]:
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:300]!r}")
        return [item["post_id"] for item in json.loads(payload)["items"]]

    def close(self) -> None:
        self.connection.close()


def http_parser(choice: str) -> str:
    """The parser uvicorn runs for ``--http choice``."""
    if choice != "auto":
        return choice
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """The child process serving the routes, and its port."""

    process: subprocess.Popen[bytes]
    port: int

    @classmethod
    def start(cls, args: argparse.Namespace, backend: str) -> Server:
        port = free_port()
        command = [
            sys.executable, "-m", "bench.query_http", "--serve",
            "--backend", backend,
            "--size", str(args.size),
            "--members", str(args.members),
            "--port", str(port),
            "--http", args.http,
        ]  # fmt: skip
        return cls(subprocess.Popen(command), port)

    def wait_ready(self, timeout_s: float) -> None:
        """Until ``/readyz`` answers 200 (the child built its index and serves)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the bench server exited with {self.process.returncode}")
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.2)
        raise SystemExit(f"the bench server was not ready after {timeout_s:.0f} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def http_phase(
    server: Server, endpoint: str, order: list[int], concurrency: int
) -> tuple[Timed, dict[int, list[str]]]:
    """Latencies of ``order[WARMUP:]`` over HTTP and the ids each member got."""
    answers: dict[int, list[str]] = {}
    lock = threading.Lock()
    clients = [Client(server.port) for _ in range(concurrency)]

    def caller(client: Client) -> Callable[[int], object]:
        ask = getattr(client, endpoint)

        def call(i: int) -> object:
            ids = ask(member_id(i))
            with lock:
                answers[i] = ids
            return ids

        return call

    try:
        calls = [caller(c) for c in clients]
        for i in order[:WARMUP]:
            calls[0](i)
        timed = _timed_threads(calls, order, lambda: process_cpu_seconds(server.process.pid))
    finally:
        for client in clients:
            client.close()
    return timed, answers


def in_process_phase(index: BenchIndex, order: list[int], concurrency: int) -> Timed:
    for i in order[:WARMUP]:
        index.search(i)
    return _timed_threads([index.search] * concurrency, order, time.process_time)


def run_backend(args: argparse.Namespace, backend: str) -> bool:
    """Every phase against one backend's server; True when every answer matched.

    The parent builds the same index while the child does, then alternates: in-process
    search (the server idle), HTTP (the parent's index idle), round after round; each
    figure is the median over rounds."""
    server = Server.start(args, backend)
    try:
        index = build_index(backend, args.size, args.members)
        expected = [index.search(i) for i in range(args.members)]
        server.wait_ready(args.start_timeout_s)
        return measure(args, backend, server, index, expected)
    finally:
        server.stop()


def measure(
    args: argparse.Namespace,
    backend: str,
    server: Server,
    index: BenchIndex,
    expected: list[list[str]],
) -> bool:
    order = _request_order(args.requests, args.members)
    identical = True
    for concurrency in (1, args.concurrency):
        for endpoint in ENDPOINTS:
            rounds: list[tuple[Timed, Timed]] = []
            matched = True
            for _ in range(args.rounds):
                baseline = in_process_phase(index, order, concurrency)
                over_http, answers = http_phase(server, endpoint, order, concurrency)
                matched &= all(ids == expected[i] for i, ids in answers.items())
                rounds.append((over_http, baseline))
            identical &= matched
            config = {
                "size": args.size,
                "backend": backend,
                "endpoint": endpoint,
                "k": K,
                "concurrency": concurrency,
                "requests": args.requests,
                "rounds": args.rounds,
                "http": http_parser(args.http),
                "results_identical": matched,
            }
            for q in (50, 99):
                emit(
                    BENCH,
                    config,
                    f"latency_p{q}_ms",
                    float(np.median([np.percentile(h.seconds, q) * 1000 for h, _ in rounds])),
                    "ms",
                    "in-process IndexStore.search, same index and queries",
                    float(np.median([np.percentile(b.seconds, q) * 1000 for _, b in rounds])),
                )
            summaries: tuple[tuple[str, str, Callable[[Timed], float]], ...] = (
                ("throughput", "requests/s", lambda t: t.rate),
                ("server_cpu_per_request", "ms", lambda t: t.cpu_ms_per_request),
            )
            for metric, unit, of in summaries:
                emit(
                    BENCH,
                    config,
                    metric,
                    float(np.median([of(h) for h, _ in rounds])),
                    unit,
                    "in-process IndexStore.search",
                    float(np.median([of(b) for _, b in rounds])),
                )
    return identical


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=200_000, help="posts in the index")
    parser.add_argument("--backends", default="flat,ivf")
    parser.add_argument("--members", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=2_000, help="per phase, after warm-up")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--http",
        choices=("auto", "h11", "httptools"),
        default="auto",
        help="uvicorn's HTTP parser (auto: httptools when installed, as feedline serve)",
    )
    parser.add_argument("--start-timeout-s", type=float, default=600)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args)
        return
    identical = all([run_backend(args, backend) for backend in args.backends.split(",")])
    if not identical:
        raise SystemExit("an HTTP answer differed from the in-process search")


if __name__ == "__main__":
    main()
