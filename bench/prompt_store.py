"""Prompt-processor throughput on its two table stores, RocksDB (the default) and memory, in
one run (ABBA order, the same seeded workload on fresh topics each time).

RocksDB is what makes restarts read only the changelog tail (``bench/restart_time.py``); this
measures what it costs while running.

Usage::

    python -m bench.prompt_store --events 10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from statistics import mean

from bench.common import emit
from bench.worker_throughput import PARTITIONS, prompt_worker_rate, publish_events
from streams.local_broker import LocalKafka
from streams.settings import KafkaSettings
from streams.topics import ensure_topics

BENCH = "prompt_store"
ABBA = ("rocksdb", "memory", "memory", "rocksdb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="feedline-bench-store-"))
    broker = LocalKafka(work / "kafka")
    rates: dict[str, list[float]] = {"rocksdb": [], "memory": []}
    try:
        bootstrap = broker.start()
        for run, store in enumerate(ABBA):
            kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"{store}{run}.",
                                  partitions=PARTITIONS)  # fmt: skip
            ensure_topics(kafka)
            publish_events(kafka, args.events, args.seed)
            os.environ["FEEDLINE_PROMPTS_STORE"] = store  # the role inherits the environment
            command = ["feedline", "worker", "prompts"]
            rates[store].append(prompt_worker_rate(kafka, command, work, args.events))
    finally:
        os.environ.pop("FEEDLINE_PROMPTS_STORE", None)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    emit(BENCH, {"events": args.events, "partitions": PARTITIONS, "runs": "ABBA"},
         "prompt_worker_events_per_s", mean(rates["rocksdb"]), "events/s", "memory store",
         mean(rates["memory"]))  # fmt: skip


if __name__ == "__main__":
    main()
