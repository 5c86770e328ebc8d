"""The event producer client against a bare confluent-kafka ``Producer``, on one local broker,
the same messages, interleaved in one run.

- ``publish(event)``: ``EventProducer.publish`` of ``PostCreated`` objects (routing, key,
  JSON encoding, idempotent ``acks=all``, lz4), then ``flush()``;
- ``publish_many(events)``: the bulk-load call on the same objects;
- ``publish_raw(bytes)``: pre-encoded bytes through the same client;
- the baseline: a bare ``confluent_kafka.Producer`` with librdkafka's defaults producing the
  same pre-encoded bytes and keys, ``flush()`` included;
- for reference, a bare ``Producer`` with feedline's settings (idempotence, ``acks=all``,
  murmur2, lz4), so the cost of the settings and of the Python wrapper show apart.

Each client sends every message once per round, rounds in rotating order; the rate is
messages / (first produce → flush returned), the best round of each client: the broker and
the client share two cores, so a round is only ever slowed by the other (timeit's rule).

Usage::

    python -m bench.producer --messages 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.common import emit
from schemas import PostCreated, encode
from streams.kafka_clients import CONFLUENT_PRODUCER_DEFAULTS
from streams.local_broker import LocalKafka
from streams.producer import EventProducer
from streams.settings import KafkaSettings
from streams.topics import POSTS_CREATED, ensure_topics

BENCH = "producer"
PARTITIONS = 4
STATISTIC = "best round of each (timeit's rule: on a shared CPU, interference only slows a round)"
WORDS = ["kafka", "stream", "index", "vector", "feed", "member", "engagement", "latency",
         "freshness", "retrieval"]  # fmt: skip


def make_posts(n: int) -> list[PostCreated]:
    """``n`` text posts of about 345 bytes of JSON each."""
    now = int(time.time() * 1000)
    return [
        PostCreated.model_validate(
            {
                "schema_version": 1,
                "post_id": f"post-{i:07d}",
                "author_id": f"author-{i % 997:04d}",
                "created_at_ms": now + i,
                "format": "text",
                "text": " ".join(WORDS[(i + j) % len(WORDS)] for j in range(14)),
                "hashtags": ["streaming", "feeds"],
            }
        )
        for i in range(n)
    ]


def timed(send: Callable[[], None], flush: Callable[[], Any], messages: int) -> float:
    """Messages per second from the first send to the end of ``flush``."""
    started = time.perf_counter()
    send()
    remaining = flush()
    if remaining:
        raise RuntimeError(f"{remaining} messages not delivered")
    return messages / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    posts = make_posts(args.messages)
    payloads = [(p.post_id.encode(), encode(p)) for p in posts]
    size = sum(len(v) for _, v in payloads) / len(payloads)
    work = Path(tempfile.mkdtemp(prefix="feedline-bench-producer-"))
    broker = LocalKafka(work / "kafka")
    rates: dict[str, list[float]] = {}
    clients: dict[str, Callable[[], float]] = {}
    try:
        bootstrap = broker.start()
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=PARTITIONS)
        ensure_topics(kafka)
        topic = kafka.topic(POSTS_CREATED.name)
        clients = _clients(kafka, topic, posts, payloads)
        for _ in range(2):  # warm-up: connections, metadata, idempotent producer ids
            for name in clients:
                clients[name]()
        for round_ in range(args.rounds):
            names = list(clients)
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                rates.setdefault(name, []).append(clients[name]())
    finally:
        clients.clear()  # the producers go before the broker, not retrying into its absence
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    config = {"messages": args.messages, "rounds": args.rounds, "partitions": PARTITIONS,
              "mean_value_bytes": round(size, 1), "statistic": STATISTIC}  # fmt: skip
    baseline = max(rates["raw-defaults"])
    peer = "bare confluent_kafka.Producer, defaults, same bytes"
    for name in ("publish", "publish_many", "publish_raw", "raw-feedline-settings"):
        emit(BENCH, {**config, "client": name}, f"{name}_msgs_per_s", max(rates[name]),
             "messages/s", peer, baseline)  # fmt: skip


def _clients(
    kafka: KafkaSettings,
    topic: str,
    posts: list[PostCreated],
    payloads: list[tuple[bytes, bytes]],
) -> dict[str, Callable[[], float]]:
    """Name → one timed round of that client over every message."""
    n = len(posts)
    ours = EventProducer(kafka)
    bare = Producer({"bootstrap.servers": kafka.bootstrap_servers, "log_level": 4})
    tuned = Producer({**kafka.confluent_config(), **CONFLUENT_PRODUCER_DEFAULTS})

    def publish() -> None:
        for post in posts:
            ours.publish(post)

    def publish_many() -> None:
        ours.publish_many(posts)

    def publish_raw() -> None:
        for key, value in payloads:
            ours.publish_raw(topic, key, value)

    def flush_ours() -> int:
        ours.flush(120)  # raises if anything was not delivered
        return 0

    def bare_send(producer: Producer) -> Callable[[], None]:
        def send() -> None:
            produce, poll = producer.produce, producer.poll
            for key, value in payloads:
                while True:
                    try:
                        produce(topic, value, key)
                        break
                    except BufferError:
                        poll(0.1)
            poll(0)

        return send

    return {
        "publish": lambda: timed(publish, flush_ours, n),
        "publish_many": lambda: timed(publish_many, flush_ours, n),
        "publish_raw": lambda: timed(publish_raw, flush_ours, n),
        "raw-defaults": lambda: timed(bare_send(bare), lambda: bare.flush(120), n),
        "raw-feedline-settings": lambda: timed(bare_send(tuned), lambda: tuned.flush(120), n),
    }


if __name__ == "__main__":
    main()
