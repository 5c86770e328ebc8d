"""What the fault-safe commit paths of issue 12 cost: prompt and embedding worker throughput,
each beside its pre-issue-12 path, in one run on the project's own broker.

* Prompt processor (``feedline worker prompts`` as a process): seeded soak events (posts,
  edits, deletes, engagements, profiles) published up front; events per second from the
  group's first commit until its committed offsets reach the end of its input topics.
  Baseline: ``bench.acked_prompt_worker``, the same handlers committed from faust's acks.
  Both commit every 0.5 s.
* Embedding worker (in process, one worker, 4 partitions): post prompts published up front;
  prompts per second until every offset is committed. Ours commits each partition's outputs
  and offset in one transaction; the baseline is the pre-issue-12 loop (idempotent producer,
  wait for the acks, ``consumer.commit()``). Once with all-MiniLM-L6-v2, once with constant
  vectors so the Kafka path alone is measured.

Each pair runs in ABBA order (baseline, ours, ours, baseline), every run on its own topics
with the same records, and the mean of each side is reported, so a warming or drifting machine
favours neither.

    python -m bench.worker_throughput --events 20000 --prompts 1024 --fast-prompts 20000
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from bench.common import emit
from feedline.processes import RoleProcess
from feedline.soak_workload import SoakWorkload
from models import EncoderSettings, TextEncoder
from schemas import PromptRequest, encode
from streams.embed_handlers import EmbedHandlers
from streams.embed_worker import EmbedWorker, EmbedWorkerSettings
from streams.kafka_clients import aiokafka_consumer, aiokafka_producer, confluent_producer
from streams.lag import LagReadError, consumer_group_lag
from streams.local_broker import LocalKafka
from streams.metrics import EmbedMetrics
from streams.producer import EventProducer
from streams.records import from_consumer_record
from streams.settings import KafkaSettings
from streams.topics import PRODUCER_TOPICS, PROMPTS_POSTS, ensure_topics

BENCH = "worker_throughput"
PARTITIONS = 4
ABBA_PROMPTS = ("acked", "ledger", "ledger", "acked")
ABBA_EMBED = ("plain", "txn", "txn", "plain")


class ProgressClock:
    """Rate from the first commit to the last (start-up excluded): committed records / seconds
    between; from the start when everything committed at once."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.perf_counter()
        self.first: tuple[float, int] | None = None

    def observe(self, lag: int) -> float | None:
        """The rate once ``lag`` is 0 (None before)."""
        done = self.total - lag
        now = time.perf_counter()
        if self.first is None and done > 0:
            self.first = (now, done)
        if lag or self.first is None:
            return None
        began, at_first = self.first
        if done == at_first:
            began, at_first = self.started, 0
        return (done - at_first) / max(now - began, 1e-9)


def group_lag(kafka: KafkaSettings, group: str, topics: list[str]) -> int:
    """The group's total lag, retried while the coordinator is still loading."""
    for _ in range(100):
        try:
            return sum(consumer_group_lag(kafka, kafka.topic(group), topics).values())
        except LagReadError:
            time.sleep(0.2)
    raise TimeoutError(f"the lag of {group} could not be read")


def prompt_worker_rate(kafka: KafkaSettings, command: list[str], work: Path, events: int) -> float:
    env = {
        "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FEEDLINE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "FEEDLINE_KAFKA_PARTITIONS": str(PARTITIONS),
        "FEEDLINE_PROMPTS_DATA_DIR": str(work / kafka.topic_prefix),
        "FEEDLINE_PROMPTS_COMMIT_INTERVAL_S": "0.5",
        "FEEDLINE_LOG_LEVEL": "WARNING",
    }
    module, *args = command
    role = RoleProcess(f"prompts-{kafka.topic_prefix}", args, env, work / "logs", module).start()
    clock = ProgressClock(events)
    inputs = [kafka.topic(s.name) for s in PRODUCER_TOPICS]
    try:
        deadline = time.monotonic() + 1_800
        while time.monotonic() < deadline:
            if not role.running:
                raise RuntimeError(f"{command} exited:\n{role.log_tail()}")
            rate = clock.observe(group_lag(kafka, "feedline-prompts", inputs))
            if rate is not None:
                return rate
            time.sleep(0.25)
        raise TimeoutError(f"{command} did not catch up")
    finally:
        role.stop()


def publish_events(kafka: KafkaSettings, events: int, seed: int) -> None:
    workload = SoakWorkload(seed=seed, members=200)
    with EventProducer(kafka, linger_ms=20) as producer:
        for event in workload.next_batch(events, int(time.time() * 1000)):
            producer.publish(event)


def publish_prompts(kafka: KafkaSettings, prompts: int) -> None:
    producer = confluent_producer(kafka, **{"linger.ms": 20})
    words = [
        "kafka",
        "stream",
        "index",
        "vector",
        "feed",
        "member",
        "engagement",
        "latency",
        "freshness",
    ]
    for i in range(prompts):
        text = (
            f"post | format: text | author: engineer @ c{i % 7} | industry: Technology\n"
            f"text: {' '.join(words[(i + j) % len(words)] for j in range(40))}"
        )
        request = PromptRequest(
            entity="post", entity_id=f"p{i:06d}", version=1, text=text,
            prompt_version="post-v2", event_time_ms=1, prompted_at_ms=1,
        )  # fmt: skip
        producer.produce(kafka.topic(PROMPTS_POSTS.name), encode(request), f"p{i:06d}".encode())
        producer.poll(0)
    assert producer.flush(60) == 0


class ConstantEncoder:
    """Constant vectors in no time: isolates the Kafka path of a worker loop."""

    model_version = "constant@1"
    tokens_encoded = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.full((len(texts), 384), 1 / np.sqrt(384), dtype=np.float32)


async def unfenced_loop(kafka: KafkaSettings, encoder: Any, stop: asyncio.Event) -> None:
    """The embedding worker's loop before issue 12: produce, wait for the acks, commit."""
    metrics = EmbedMetrics(CollectorRegistry())
    handlers = EmbedHandlers(kafka, metrics, encoder.model_version)
    producer = aiokafka_producer(kafka)
    consumer = aiokafka_consumer(
        kafka, kafka.topic(PROMPTS_POSTS.name), group_id=kafka.topic("feedline-embed")
    )
    await producer.start()
    await consumer.start()

    async def embed(texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(encoder.encode, texts)

    try:
        while not stop.is_set():
            polled = await consumer.getmany(timeout_ms=200, max_records=256)
            records = [from_consumer_record(m) for batch in polled.values() for m in batch]
            if not records:
                continue
            sends = [
                await producer.send(r.topic, r.value, key=r.key, headers=r.headers)
                for r in await handlers.handle(records, embed)
            ]
            await asyncio.gather(*sends)
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


async def transactional_loop(kafka: KafkaSettings, encoder: Any, stop: asyncio.Event) -> None:
    """Today's embedding worker."""
    settings = EmbedWorkerSettings(poll_timeout_ms=200)
    async with EmbedWorker(kafka, settings, encoder, EmbedMetrics(CollectorRegistry())) as worker:
        run = asyncio.create_task(worker.run())
        await stop.wait()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)


async def embed_rate(
    kafka: KafkaSettings,
    loop: Callable[[KafkaSettings, Any, asyncio.Event], Coroutine[Any, Any, None]],
    encoder: Any,
    prompts: int,
) -> float:
    stop = asyncio.Event()
    task = asyncio.create_task(loop(kafka, encoder, stop))
    clock = ProgressClock(prompts)
    try:
        while True:
            if task.done():
                task.result()
                raise RuntimeError("the embedding loop stopped")
            lag = await asyncio.to_thread(
                group_lag, kafka, "feedline-embed", [kafka.topic(PROMPTS_POSTS.name)]
            )
            if (rate := clock.observe(lag)) is not None:
                return rate
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--prompts", type=int, default=1_024)
    parser.add_argument("--fast-prompts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="feedline-bench-workers-"))
    broker = LocalKafka(work / "kafka")
    try:
        bootstrap = broker.start()

        def topics(prefix: str) -> KafkaSettings:
            kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix,
                                  partitions=PARTITIONS)  # fmt: skip
            ensure_topics(kafka)
            return kafka

        commands = {
            "acked": ["bench.acked_prompt_worker"],
            "ledger": ["feedline", "worker", "prompts"],
        }
        rates: dict[str, list[float]] = {"acked": [], "ledger": []}
        for run, side in enumerate(ABBA_PROMPTS):
            kafka = topics(f"{side}{run}.")
            publish_events(kafka, args.events, args.seed)
            rates[side].append(prompt_worker_rate(kafka, commands[side], work, args.events))
        emit(BENCH, {"events": args.events, "partitions": PARTITIONS, "commit_interval_s": 0.5,
                     "runs": "ABBA"},
             "prompt_worker_events_per_s", mean(rates["ledger"]), "events/s",
             "faust acks commit (before issue 12)", mean(rates["acked"]))  # fmt: skip
        model = TextEncoder.load(EncoderSettings())
        loops = {"plain": unfenced_loop, "txn": transactional_loop}
        for label, encoder, count in (
            ("all-MiniLM-L6-v2", model, args.prompts),
            ("constant vectors", ConstantEncoder(), args.fast_prompts),
        ):
            rates = {"plain": [], "txn": []}
            for run, side in enumerate(ABBA_EMBED):
                kafka = topics(f"{side}{run}-{'model' if encoder is model else 'const'}.")
                publish_prompts(kafka, count)
                rates[side].append(asyncio.run(embed_rate(kafka, loops[side], encoder, count)))
            emit(BENCH, {"prompts": count, "partitions": PARTITIONS, "embedding": label,
                         "runs": "ABBA"},
                 "embed_worker_prompts_per_s", mean(rates["txn"]), "prompts/s",
                 "idempotent producer + consumer.commit (before issue 12)",
                 mean(rates["plain"]))  # fmt: skip
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
