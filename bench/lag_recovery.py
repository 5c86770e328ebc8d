"""How long the lag exporter's series take to come back after a broker restart (issue 13):
seconds from the killed broker answering again to every pipeline group's
``kafka_consumergroup_lag`` series being back, over a few restarts, on a private local broker.

Three readers watch each restart side by side, each in its own process (librdkafka's group
admin calls can kill theirs: "crashed" is a result), started and checked to read every series
before the kill, each polling its own collector (``cache_s=0``) every ``--poll-s``:

- **ours**: ``KafkaOffsetsSource``, as the exporter runs it;
- **baseline**: the pre-issue-13 source, one librdkafka ``AdminClient`` for metadata, group
  state and watermarks, kept across the restart as the old exporter kept it;
- **peer**: the same pre-issue-13 source built afresh for every reading: a fresh
  ``feedline lag`` of the old code, what worked "at the same moment" in the issue.

A reader not back within ``--cap-s``, or crashed, counts as ``--cap-s`` in the value and the
baseline value (``baseline_not_back`` says how many restarts that was), so the ratio is an
upper bound. The value is the worst restart of ours (the issue's bound is 30 s); the config
lists every restart of every reader.

    python -m bench.lag_recovery --restarts 3
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import multiprocessing
import os
import signal
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import OffsetSpec
from prometheus_client import CollectorRegistry

from bench.common import emit
from index_store.settings import IndexSettings
from streams.kafka_clients import admin_client
from streams.lag import (
    GroupSpec,
    GroupState,
    KafkaOffsetsSource,
    LagReadError,
    OffsetsSource,
    Partition,
)
from streams.lag_exporter import ConsumerLagCollector, EmbedGroupSettings, pipeline_groups
from streams.local_broker import LocalKafka
from streams.prompt_settings import PromptWorkerSettings
from streams.settings import KafkaSettings
from streams.topics import EMBEDDINGS_POSTS, POSTS_CREATED, PROMPTS_POSTS, ensure_topics

BENCH = "lag_recovery"
Series = frozenset[tuple[str, str, str]]  # (group, topic, partition) of each lag series


class PreFixSource:
    """The pre-issue-13 ``KafkaOffsetsSource``: one ``AdminClient`` for everything, never
    rebuilt (record timestamps as ours: a short-lived consumer, as before)."""

    def __init__(self, kafka: KafkaSettings, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.admin = admin_client(kafka)
        self.stamps = KafkaOffsetsSource(kafka, timeout_s)

    def partition_counts(self) -> dict[str, int]:
        """Topics and partition counts from ``list_topics``."""
        topics = self._call(lambda: self.admin.list_topics(timeout=self.timeout_s).topics)
        return {name: len(meta.partitions) for name, meta in topics.items() if not meta.error}

    def group_state(self, group: str) -> GroupState:
        """Offsets and members through librdkafka's coordinator admin calls."""
        request = [ConsumerGroupTopicPartitions(group)]
        t = self.timeout_s
        listed = self._call(
            lambda: self.admin.list_consumer_group_offsets(request, request_timeout=t)[group]
        )
        described = self._call(
            lambda: self.admin.describe_consumer_groups([group], request_timeout=t)[group]
        )
        offsets = self._call(listed.result).topic_partitions
        members = len(self._call(described.result).members)
        return GroupState({(p.topic, p.partition): p.offset for p in offsets}, members)

    def watermarks(
        self, partitions: Sequence[Partition]
    ) -> tuple[dict[Partition, int], dict[Partition, int]]:
        """``(earliest, latest)`` through ``list_offsets``."""
        return self._offsets(partitions, OffsetSpec.earliest()), self._offsets(
            partitions, OffsetSpec.latest()
        )

    def timestamps(self, positions: Mapping[Partition, int]) -> dict[Partition, int]:
        """As ours."""
        return self.stamps.timestamps(positions)

    def _offsets(self, partitions: Sequence[Partition], spec: OffsetSpec) -> dict[Partition, int]:
        request = {ConfluentPartition(t, p): spec for t, p in partitions}
        futures = self._call(
            lambda: self.admin.list_offsets(request, request_timeout=self.timeout_s)
        )
        return {(tp.topic, tp.partition): self._call(f.result).offset for tp, f in futures.items()}

    @staticmethod
    def _call(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except KafkaException as error:
            raise LagReadError(str(error)) from error


class FreshPreFixSource:
    """A new ``PreFixSource`` for every reading (a fresh ``feedline lag`` of the old code)."""

    def __init__(self, kafka: KafkaSettings, timeout_s: float) -> None:
        self.kafka, self.timeout_s = kafka, timeout_s
        self.current = PreFixSource(kafka, timeout_s)

    def partition_counts(self) -> dict[str, int]:
        """Starts a reading, on a new source."""
        self.current = PreFixSource(self.kafka, self.timeout_s)
        return self.current.partition_counts()

    def group_state(self, group: str) -> GroupState:
        """Of this reading's source."""
        return self.current.group_state(group)

    def watermarks(
        self, partitions: Sequence[Partition]
    ) -> tuple[dict[Partition, int], dict[Partition, int]]:
        """Of this reading's source."""
        return self.current.watermarks(partitions)

    def timestamps(self, positions: Mapping[Partition, int]) -> dict[Partition, int]:
        """Of this reading's source."""
        return self.current.timestamps(positions)


READERS: dict[str, Callable[[KafkaSettings, float], OffsetsSource]] = {
    "ours": KafkaOffsetsSource,
    "baseline": PreFixSource,
    "peer": FreshPreFixSource,
}


class Shared(NamedTuple):
    """What a reader's process and the bench share (``time.monotonic`` is system-wide)."""

    ready: Any  # multiprocessing Event: the reader saw every series once
    answered_at: Any  # multiprocessing Value('d'): when the broker answered again, 0 before
    recovered_s: Any  # multiprocessing Value('d'): seconds to every series back, -1 before


def series(registry: CollectorRegistry) -> Series:
    """The lag series of one reading."""
    families = {f.name: f for f in registry.collect()}
    labels = [s.labels for s in families["kafka_consumergroup_lag"].samples]
    return frozenset((x["consumergroup"], x["topic"], x["partition"]) for x in labels)


def watch(
    reader: str, kafka: KafkaSettings, groups: list[GroupSpec], args: Any, shared: Shared
) -> None:
    """A reader's process: read every ``poll_s`` until every series seen before the restart
    is back after ``answered_at``. Its own process, since librdkafka's group admin calls can
    kill it (a crash is a result here)."""
    logging.basicConfig(level=args.log_level, format=f"{reader}: %(levelname)s %(message)s")
    faulthandler.register(signal.SIGUSR1)  # the bench dumps a reader's stacks if it hangs
    source = READERS[reader](kafka, args.timeout_s)
    registry = CollectorRegistry()
    registry.register(ConsumerLagCollector(kafka, groups, 0, source=source))
    expected = series(registry)
    while {group for group, _, _ in expected} != {g.group for g in groups}:
        time.sleep(args.poll_s)
        expected = series(registry)
    shared.ready.set()
    while True:
        time.sleep(args.poll_s)
        seen = series(registry)
        answered = shared.answered_at.value
        if answered and seen == expected:
            shared.recovered_s.value = max(0.0, time.monotonic() - answered)
            return


def seed(kafka: KafkaSettings) -> list[GroupSpec]:
    """Topics with records, the prompt and embedding groups committed, the index not."""
    ensure_topics(kafka)
    producer = Producer(kafka.confluent_config())
    for name in (POSTS_CREATED.name, PROMPTS_POSTS.name, EMBEDDINGS_POSTS.name):
        for i in range(3):
            producer.produce(kafka.topic(name), b"v%d" % i, partition=0)
    assert producer.flush(30) == 0
    for group, topic in (("feedline-prompts", POSTS_CREATED), ("feedline-embed", PROMPTS_POSTS)):
        consumer = Consumer({**kafka.confluent_config(), "group.id": group})
        consumer.commit(offsets=[ConfluentPartition(topic.name, 0, 1)], asynchronous=False)
        consumer.close()
    return pipeline_groups(
        kafka,
        PromptWorkerSettings(app_id="feedline-prompts"),
        EmbedGroupSettings(group_id="feedline-embed"),
        IndexSettings(consumer_group="feedline-index"),
    )


def restart_once(
    broker: LocalKafka, kafka: KafkaSettings, groups: list[GroupSpec], args: Any
) -> dict[str, float | str]:
    """Kill the broker, keep it down ``down_s``, restart it: each reader's seconds from the
    broker answering to every series back (``cap_s`` if never; ``"crashed"``)."""
    spawn = multiprocessing.get_context("spawn")
    shared = {
        r: Shared(spawn.Event(), spawn.Value("d", 0.0), spawn.Value("d", -1.0)) for r in READERS
    }
    readers = {
        r: spawn.Process(target=watch, args=(r, kafka, groups, args, shared[r]), daemon=True)
        for r in READERS
    }
    for reader in readers.values():
        reader.start()
    for name, state in shared.items():
        if not state.ready.wait(60):
            os.kill(readers[name].pid or 0, signal.SIGUSR1)
            time.sleep(1)
            raise RuntimeError(f"reader {name} saw no series before the restart (stacks above)")
    broker.kill()
    time.sleep(args.down_s)
    broker.start()  # returns once the broker answers a metadata request
    answered = time.monotonic()
    for state in shared.values():
        state.answered_at.value = answered
    while time.monotonic() - answered < args.cap_s and any(p.is_alive() for p in readers.values()):
        time.sleep(0.1)
    results: dict[str, float | str] = {}
    for name, reader in readers.items():
        reader.terminate()
        reader.join(10)
        recovered = shared[name].recovered_s.value
        crashed = reader.exitcode not in (0, -signal.SIGTERM)
        results[name] = "crashed" if crashed else recovered if recovered >= 0 else args.cap_s
    return results


def worst(seconds: list[float | str], cap_s: float) -> float:
    """The longest recovery; a crash never recovers: ``cap_s``."""
    return max(s if isinstance(s, float) else cap_s for s in seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--down-s", type=float, default=3.0, help="seconds the broker stays down")
    parser.add_argument("--cap-s", type=float, default=60.0, help="longest wait per reader")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="the exporter's timeout_s")
    parser.add_argument("--poll-s", type=float, default=0.2)
    parser.add_argument(
        "--log-level", default="CRITICAL", help="the readers' (their failures are the point)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lag-recovery-") as work:
        broker = LocalKafka(Path(work) / "kafka")
        broker.start()
        try:
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, partitions=2)
            groups = seed(kafka)
            runs: dict[str, list[float | str]] = {r: [] for r in READERS}
            for _ in range(args.restarts):
                for name, seconds in restart_once(broker, kafka, groups, args).items():
                    runs[name].append(round(seconds, 2) if isinstance(seconds, float) else seconds)
        finally:
            broker.stop(grace_s=10)
    config = {
        "restarts": args.restarts,
        "down_s": args.down_s,
        "timeout_s": args.timeout_s,
        "poll_s": args.poll_s,
        "cap_s": args.cap_s,
        "groups": [g.group for g in groups],
        "ours_s": runs["ours"],
        "baseline_s": runs["baseline"],
        "baseline_not_back": sum(
            not isinstance(s, float) or s >= args.cap_s for s in runs["baseline"]
        ),
        "peer": "pre-issue-13 source built afresh for each reading (a fresh `feedline lag`)",
        "peer_s": runs["peer"],
    }
    emit(
        BENCH,
        config,
        "lag_series_recovery_after_broker_restart_max",
        worst(runs["ours"], args.cap_s),
        "s",
        "pre-issue-13 exporter: one AdminClient kept across the restart (max; not back: cap_s)",
        worst(runs["baseline"], args.cap_s),
    )


if __name__ == "__main__":
    main()
