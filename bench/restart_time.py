"""Restart time of each role after a kill -9: from the new process's spawn to its first record
processed (the service: to ready), on a real local broker.

- **prompt processor**, per table size (10k, 100k, 1M posts in its ``posts`` and
  ``post_counts`` tables) and per store, RocksDB beside the in-memory store in the same run.
  The tables are filled by writing their changelog topics directly (records copied from the
  ones the real worker wrote for a first post), then the worker is started once so its local
  store holds them ("cold": the first start on an empty data directory), killed with SIGKILL,
  and started again ("restart"). A post published while it is down marks the first record:
  the time is the timestamp of its prompt on ``prompts.posts`` minus the spawn time.
- **embedding worker**: killed, a post published meanwhile (the prompt processor renders its
  prompt), restarted; the time runs to that post's embedding on ``embeddings.posts``, with
  static group membership beside dynamic.
- **query service**, per index size: ``embeddings.posts`` filled likewise, the service started
  and allowed one snapshot, killed, restarted; the time runs to ``/readyz`` answering 200.

Workers run with static group membership (``FEEDLINE_*_INSTANCE_ID``), as deployments should
(a StatefulSet's pod name): a restarted member takes its partitions back without waiting for
the killed one's session to time out; the embedding worker is measured without it too, as
its baseline (``--dynamic`` runs every role without it).

Usage::

    python -m bench.restart_time                       # 10k,100k,1M posts; all three roles
    python -m bench.restart_time --sizes 10000 --roles prompts
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from bench.common import emit
from feedline.processes import RoleProcess
from schemas import PostCreated
from streams.kafka_clients import confluent_consumer, confluent_producer
from streams.local_broker import LocalKafka, free_port
from streams.producer import EventProducer
from streams.prompt_settings import PromptWorkerSettings
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_POSTS, PROMPTS_POSTS, ensure_topics

BENCH = "restart_time"
PARTITIONS = 4
FILLED_TABLES = ("posts", "post_counts")
WAIT_S = 900.0


class TopicTail:
    """Records appended to a topic after construction, looked up by key."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self._consumer: Consumer = confluent_consumer(kafka, f"bench-{uuid.uuid4().hex[:8]}")
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in range(PARTITIONS)])
        self._consumer.consume(1, timeout=1.0)  # resolve OFFSET_END now, not at the first wait

    def wait_for(self, key: bytes, timeout_s: float = WAIT_S) -> tuple[int, bytes]:
        """``(timestamp_ms, value)`` of the first record with ``key``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self._consumer.consume(100, timeout=0.5):
                if message.error() is None and message.key() == key:
                    return message.timestamp()[1], message.value() or b""
        raise TimeoutError(f"no record with key {key!r} within {timeout_s:.0f} s")

    def close(self) -> None:
        self._consumer.close()


class Bench:
    """One broker; each measurement gets its own topic prefix and working directory."""

    def __init__(self, work: Path, static: bool) -> None:
        self.work = work
        self.static = static
        self.broker = LocalKafka(work / "kafka")
        self.bootstrap = ""

    def kafka(self, label: str) -> KafkaSettings:
        kafka = KafkaSettings(bootstrap_servers=self.bootstrap, topic_prefix=f"{label}.",
                              partitions=PARTITIONS)  # fmt: skip
        ensure_topics(kafka)
        return kafka

    def role(self, kafka: KafkaSettings, name: str, args: list[str], **env: str) -> RoleProcess:
        base = {
            "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "FEEDLINE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "FEEDLINE_KAFKA_PARTITIONS": str(PARTITIONS),
            "FEEDLINE_PROMPTS_DATA_DIR": str(self.work / kafka.topic_prefix / "prompts"),
            "FEEDLINE_PROMPTS_POST_MIN_INTERVAL_S": "0",
            "FEEDLINE_INDEX_SNAPSHOT_DIR": str(self.work / kafka.topic_prefix / "snapshots"),
            "FEEDLINE_LOG_LEVEL": "INFO",
        }
        if self.static:
            base["FEEDLINE_PROMPTS_INSTANCE_ID"] = base["FEEDLINE_EMBED_INSTANCE_ID"] = name
        return RoleProcess(name, args, {**base, **env}, self.work / kafka.topic_prefix / "logs")


def publish_post(kafka: KafkaSettings, post_id: str) -> None:
    now = int(time.time() * 1000)
    post = PostCreated(schema_version=1, post_id=post_id, author_id="a001", created_at_ms=now,
                       format="text", text=f"restart marker {post_id}")  # fmt: skip
    with EventProducer(kafka) as producer:
        producer.publish(post)


def time_to_record(role: RoleProcess, tail: TopicTail, key: str) -> float:
    """Start ``role``; seconds from its spawn to the timestamp of the record with ``key``."""
    spawned_ms = time.time() * 1000
    role.start()
    stamp, _ = tail.wait_for(key.encode())
    return (stamp - spawned_ms) / 1000


def copy_records(kafka: KafkaSettings, topic: str, entity_id: str, size: int) -> None:
    """Append ``size`` copies of the first record of ``topic``, which belongs to ``entity_id``,
    with that id (in key and value, however they are serialised) replaced by new ones."""
    template_key, template_value = first_record(kafka, topic)
    old = entity_id.encode()
    producer = confluent_producer(kafka, **{"linger.ms": 50, "batch.num.messages": 10_000})
    for i in range(size):
        new = f"filled{i:07d}".encode()
        key, value = template_key.replace(old, new), template_value.replace(old, new)
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)


def first_record(kafka: KafkaSettings, topic: str) -> tuple[bytes, bytes]:
    consumer = confluent_consumer(kafka, f"bench-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for message in consumer.consume(10, timeout=0.5):
                if message.error() is None and message.key() and message.value():
                    return message.key() or b"", message.value() or b""
        raise TimeoutError(f"{topic} stayed empty")
    finally:
        consumer.close()


@contextmanager
def running(role: RoleProcess) -> Iterator[RoleProcess]:
    try:
        yield role
    finally:
        role.stop()


def prompts_restart(bench: Bench, store: str, size: int) -> dict[str, float]:
    """Cold start and restart (after kill -9) of the prompt processor with ``size`` posts."""
    kafka = bench.kafka(f"p{store}{size}")
    app_id = kafka.topic(PromptWorkerSettings().app_id)
    tail = TopicTail(kafka, kafka.topic(PROMPTS_POSTS.name))
    worker = bench.role(kafka, "prompts-1", ["worker", "prompts"], FEEDLINE_PROMPTS_STORE=store)
    with running(worker):
        publish_post(kafka, "first")
        time_to_record(worker, tail, "first")
        time.sleep(3)  # the table writes' changelog sends are acknowledged
        worker.kill()
        for table in FILLED_TABLES:
            changelog = f"{app_id}-{table}-changelog"
            copy_records(kafka, changelog, "first", size)
        times = {}
        for phase in ("cold", "restart"):
            publish_post(kafka, phase)
            times[phase] = time_to_record(worker, tail, phase)
            time.sleep(3)
            worker.kill()
    tail.close()
    return times


def embed_restart(bench: Bench, static: bool) -> float:
    """Restart (after kill -9) of an embedding worker, the prompt processor running, with
    static group membership or without (then the restarted member waits for the group to
    time the killed one out)."""
    kafka = bench.kafka(f"embed{'static' if static else 'dynamic'}")
    prompts_tail = TopicTail(kafka, kafka.topic(PROMPTS_POSTS.name))
    tail = TopicTail(kafka, kafka.topic(EMBEDDINGS_POSTS.name))
    prompts = bench.role(kafka, "prompts-1", ["worker", "prompts"])
    embed = bench.role(kafka, "embed-1", ["worker", "embed"])
    if not static:
        embed.env.pop("FEEDLINE_EMBED_INSTANCE_ID", None)
    with running(prompts), running(embed):
        prompts.start()
        publish_post(kafka, "first")
        time_to_record(embed, tail, "first")
        embed.kill()
        publish_post(kafka, "second")
        prompts_tail.wait_for(b"second")
        seconds = time_to_record(embed, tail, "second")
    tail.close()
    prompts_tail.close()
    return seconds


def serve_restart(bench: Bench, size: int) -> dict[str, float]:
    """Cold start and restart (after kill -9, one snapshot written) of the query service with
    ``size`` posts in ``embeddings.posts``."""
    kafka = bench.kafka(f"serve{size}")
    tail = TopicTail(kafka, kafka.topic(EMBEDDINGS_POSTS.name))
    prompts = bench.role(kafka, "prompts-1", ["worker", "prompts"])
    embed = bench.role(kafka, "embed-1", ["worker", "embed"])
    with running(prompts), running(embed):
        prompts.start()
        publish_post(kafka, "first")
        time_to_record(embed, tail, "first")
    tail.close()
    topic = kafka.topic(EMBEDDINGS_POSTS.name)
    copy_records(kafka, topic, "first", size)
    port = free_port()
    service = bench.role(kafka, "serve", ["serve", "--port", str(port)],
                         FEEDLINE_INDEX_SNAPSHOT_INTERVAL_S="5")  # fmt: skip
    times = {}
    with running(service):
        for phase in ("cold", "restart"):
            spawned = time.monotonic()
            service.start()
            wait_ready(f"http://127.0.0.1:{port}/readyz")
            times[phase] = time.monotonic() - spawned
            time.sleep(12)  # a snapshot of the full index is written
            service.kill()
    return times


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready within {WAIT_S:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--serve-sizes", default="1000,10000,100000")
    parser.add_argument("--roles", default="prompts,embed,serve")
    parser.add_argument("--dynamic", action="store_true", help="no static group membership")
    parser.add_argument("--work-dir", type=Path, help="kept afterwards (roles' logs); default: "
                        "a temporary directory, deleted")  # fmt: skip
    args = parser.parse_args()
    roles = set(args.roles.split(","))
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="feedline-bench-restart-"))
    bench = Bench(work, static=not args.dynamic)
    membership = "dynamic" if args.dynamic else "static"
    try:
        bench.bootstrap = bench.broker.start()
        if "prompts" in roles:
            for size in map(int, args.sizes.split(",")):
                memory = prompts_restart(bench, "memory", size)
                rocksdb = prompts_restart(bench, "rocksdb", size)
                config = {"role": "prompts", "posts": size, "membership": membership}
                for phase in ("restart", "cold"):
                    emit(BENCH, {**config, "phase": phase}, "time_to_first_record_s",
                         rocksdb[phase], "s", "memory store", memory[phase])  # fmt: skip
        if "embed" in roles:
            static, dynamic = embed_restart(bench, True), embed_restart(bench, False)
            emit(BENCH, {"role": "embed", "membership": "static"}, "time_to_first_record_s",
                 static, "s", "dynamic membership", dynamic)  # fmt: skip
        if "serve" in roles:
            for size in map(int, args.serve_sizes.split(",")):
                times = serve_restart(bench, size)
                emit(BENCH, {"role": "serve", "posts": size, "phase": "restart"},
                     "time_to_ready_s", times["restart"], "s",
                     "cold start (no snapshot)", times["cold"])  # fmt: skip
    finally:
        bench.broker.stop()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
