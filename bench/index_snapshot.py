"""Snapshot write and restore times of the index store at ``--size`` posts (goal: restore 1M
in <= 30 s).

The store is filled through ``apply_batch`` (timed: that is what rebuilding by replay costs
beyond reading Kafka, and the baseline of the restore). Then a snapshot is captured and
written (Parquet + manifest, atomically), and restored into a new store (read, id map,
metadata columns, backend rebuilt from the embeddings or loaded from its native file). The
restored store must answer like the original.

    python -m bench.index_snapshot --size 1000000 --backend flat
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import emit
from bench.index_workload import MODEL, bench_settings, corpus, filled_store
from index_store.snapshots import SnapshotStore
from index_store.snapshots.persistence import capture, restore, write_snapshot

BENCH = "index_snapshot"


def run(size: int, dim: int, backend: str, root: Path) -> None:
    settings = bench_settings(backend)
    vectors = corpus(size, dim, seed=3)
    store, replay_s = filled_store(settings, vectors)
    del vectors

    started = time.perf_counter()
    image = capture(store, root)
    captured_s = time.perf_counter() - started
    snapshots = SnapshotStore(root, keep=1)
    offsets = {("embeddings.posts", 0): size}
    snapshot = write_snapshot(snapshots, image, model_version=MODEL, dim=dim, offsets=offsets)
    write_s = time.perf_counter() - started
    del image

    started = time.perf_counter()
    restored = restore(snapshot, MODEL, settings, dim)
    restore_s = time.perf_counter() - started

    query = np.ones(dim, np.float32) / np.sqrt(dim)
    assert [h for h, _ in restored.search(query, 10)] == [h for h, _ in store.search(query, 10)]
    config = {"size": size, "dim": dim, "backend": backend}
    files = sum(snapshot.manifest.files.values())
    emit(BENCH, config, "capture_s", captured_s, "s")
    emit(BENCH, config, "snapshot_write_s", write_s, "s")
    emit(BENCH, config, "snapshot_bytes", files, "bytes")
    emit(BENCH, config, "restore_s", restore_s, "s", "rebuild by applying every update", replay_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--backends", default="flat")
    parser.add_argument("--dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        if args.dir is not None:
            run(args.size, args.dim, backend, args.dir / backend)
            continue
        with tempfile.TemporaryDirectory(prefix="feedline-bench-") as root:
            run(args.size, args.dim, backend, Path(root))


if __name__ == "__main__":
    main()
