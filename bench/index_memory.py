"""Memory of a query-service index per million posts, per backend (flat, ivf, hnsw; torch on CUDA).

Each backend is measured in a fresh Python process (this module run again with a hidden
``--child`` flag), so nothing a previous backend allocated, and nothing the parent holds, is
in its numbers. The child imports everything, builds and searches one tiny warm-up store of
the same backend (IVF trained on a small nlist, so FAISS, BLAS and OpenMP are initialised),
drops it, returns the freed heap to the OS (glibc ``malloc_trim``) and reads its resident set
size (RSS). Then it builds a real ``IndexStore`` (``IndexSettings(backend=...)`` at the
service's defaults, dim 384) through the normal update path: ``--posts`` ``EmbeddingUpdate``
objects (random unit vectors, the attributes the benchmarks use — author_id, format,
language, created_at_ms — and a ~200-character prompt ``text``) applied by ``apply_batch`` in
the index feed's 2,000-record polls, then ``--members`` member updates (default posts / 10),
then ``store.maintain()`` (what the live index feed runs when a poll comes back empty). The
update objects of a batch are built just before it is applied and dropped after, as the feed
does; the store keeps no prompt text (``PostTable`` holds ids, versions, times and coded
attributes; a member keeps its vector and version fields).

Reported, per post (``--posts`` N) and extrapolated linearly to a million posts:

- ``rss_bytes_per_post``: (RSS after the build - RSS before) / N, members included;
- ``rss_gb_per_million_posts``: the same x 1e6, in GB (1e9 bytes);
- ``peak_rss_gb_per_million_posts``: (high-water RSS, ``VmHWM`` - RSS before) / N x 1e6: the
  mark while building (vector arrays reallocated while growing, IVF training copies);
  ``VmHWM`` rather than ``ru_maxrss``, which a ``subprocess`` child inherits from its parent;
- ``rss_bytes_per_post_after_malloc_trim``: RSS after glibc's ``malloc_trim(0)`` returns
  freed heap (the update objects' garbage) to the OS; the gap to ``rss_bytes_per_post`` is
  freed-but-held heap, not data;
- ``backend_bytes_per_post``: the backend's own ``memory_bytes()`` / N;
- ``member_rss_bytes_each``: (RSS after the members - RSS after the posts) / M; a floor, and
  noisy: the members reuse heap the post updates freed, so it is often below a member's own
  1,536-byte vector;
- ``cuda_bytes_per_post`` (torch only): ``torch.cuda.memory_allocated()`` / N — device memory
  is not in RSS.

Baseline, same arithmetic: the float32 vectors alone, 4 x 384 = 1,536 bytes per post
(1.536 GB per million). The extrapolation to a million is checked by running N/2 as well:
``linearity_rss_bytes_per_post`` has per-post RSS at N as its value and at N/2 as its
baseline, so its ``ratio`` is 1.0 where memory grows linearly (IVF's fixed centroids, the
doubling growth of columns and of FAISS's arrays move it off 1.0).

RSS, not ``tracemalloc``: FAISS allocates its vectors, inverted lists and graphs in C++
(``new``/``std::vector``), outside Python's allocator, so ``tracemalloc`` sees none of them;
RSS is also what a container's memory limit counts. Linux only (``/proc/self/statm``).

    python -m bench.index_memory                      # 200k posts (and 100k), flat,ivf,hnsw
    python -m bench.index_memory --posts 1000000 --backends flat,hnsw
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit
from bench.index_workload import CHUNK, MODEL, attrs
from index_store import IndexSettings, IndexStore, StoreUpdate
from schemas import EmbeddingUpdate, Entity

BENCH = "index_memory"
DIM = 384
BATCH = CHUNK
"""Records per ``apply_batch``: the index feed's poll size."""
MEMBERS_PER_POST = 0.1
WARMUP_POSTS = 400
WARMUP_NLIST = 8
GB = 1e9
MILLION = 1_000_000
BASELINE = "float32 vectors alone"
MEMBER_BASELINE = "float32 member vector alone"
ROOT = Path(__file__).resolve().parents[1]
PROSE = (
    "Notes from the platform team on rolling out the new feed ranking: latency stayed flat, "
    "engagement rose in two regions, and the on-call rota moves to Tuesdays. Questions and "
    "comments welcome in the usual channel before the review on Friday afternoon."
)
TEXT_CHARS = 200


@dataclass(frozen=True)
class Reading:
    """What one child process measured, in bytes (and seconds)."""

    backend: str
    posts: int
    members: int
    dim: int
    rss_before: int
    """After imports and the warm-up store (its freed heap trimmed), before the first update."""
    rss_after_posts: int
    rss_after: int
    """After posts, members and ``maintain()``, garbage collected."""
    rss_trimmed: int | None
    """``rss_after`` once ``malloc_trim(0)`` ran; None where glibc is not there."""
    peak_rss: int
    """``VmHWM`` at the end: the process's high-water mark."""
    backend_bytes: int
    cuda_bytes: int | None
    ivf_trained: bool | None
    build_s: float


def per_post(before: int, after: int, posts: int) -> float:
    """Bytes per post that ``posts`` posts added between two RSS readings."""
    if posts <= 0:
        raise ValueError(f"posts must be positive, not {posts}")
    return (after - before) / posts


def gb_per_million(bytes_per_post: float) -> float:
    """A per-post byte figure extrapolated linearly to a million posts, in GB (1e9 bytes)."""
    return bytes_per_post * MILLION / GB


def baseline_bytes_per_post(dim: int) -> int:
    """The float32 vector of one post."""
    return 4 * dim


def figures(reading: Reading) -> dict[str, float]:
    """The per-post and per-million figures of one reading."""
    n = reading.posts
    rss = per_post(reading.rss_before, reading.rss_after, n)
    found = {
        "rss_bytes_per_post": rss,
        "rss_gb_per_million_posts": gb_per_million(rss),
        "peak_rss_gb_per_million_posts": gb_per_million(
            per_post(reading.rss_before, reading.peak_rss, n)
        ),
        "backend_bytes_per_post": reading.backend_bytes / n,
    }
    if reading.rss_trimmed is not None:
        trimmed = per_post(reading.rss_before, reading.rss_trimmed, n)
        found["rss_bytes_per_post_after_malloc_trim"] = trimmed
    if reading.members:
        found["member_rss_bytes_each"] = per_post(
            reading.rss_after_posts, reading.rss_after, reading.members
        )
    if reading.cuda_bytes is not None:
        found["cuda_bytes_per_post"] = reading.cuda_bytes / n
    return found


def config(reading: Reading, settings: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` of every line of one reading: the set-up, and the raw readings."""
    return {
        "posts": reading.posts,
        "members": reading.members,
        "dim": reading.dim,
        "backend": reading.backend,
        "batch": BATCH,
        "settings": settings,
        "per_million": "extrapolated linearly from posts",
        "vectors": "random unit",
        "text_chars": TEXT_CHARS,
        "ivf_trained": reading.ivf_trained,
        "build_s": round(reading.build_s, 2),
        "readings_bytes": {
            "rss_before": reading.rss_before,
            "rss_after_posts": reading.rss_after_posts,
            "rss_after": reading.rss_after,
            "rss_trimmed": reading.rss_trimmed,
            "peak_rss": reading.peak_rss,
        },
    }


def report(reading: Reading, settings: dict[str, Any], half: Reading | None = None) -> None:
    """Print the lines of one reading (and, given the N/2 reading, the linearity line)."""
    setup = config(reading, settings)
    vector = baseline_bytes_per_post(reading.dim)
    baselines: dict[str, tuple[str, float]] = {
        "rss_bytes_per_post": (BASELINE, vector),
        "rss_gb_per_million_posts": (BASELINE, gb_per_million(vector)),
        "peak_rss_gb_per_million_posts": (BASELINE, gb_per_million(vector)),
        "rss_bytes_per_post_after_malloc_trim": (BASELINE, vector),
        "backend_bytes_per_post": (BASELINE, vector),
        "member_rss_bytes_each": (MEMBER_BASELINE, vector),
        "cuda_bytes_per_post": (BASELINE, vector),
    }
    for metric, value in figures(reading).items():
        unit = "GB" if metric.endswith("_gb_per_million_posts") else "bytes"
        against, baseline_value = baselines[metric]
        emit(BENCH, setup, metric, value, unit, against, baseline_value)
    if half is not None:
        emit(
            BENCH,
            setup | {"half_posts": half.posts},
            "linearity_rss_bytes_per_post",
            figures(reading)["rss_bytes_per_post"],
            "bytes",
            f"rss_bytes_per_post at {half.posts} posts",
            figures(half)["rss_bytes_per_post"],
        )


# --- measuring (in the child) ---------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """This process's high-water RSS: ``VmHWM`` of ``/proc/self/status``.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: a child started with ``vfork``/``posix_spawn``
    (as ``subprocess`` does) inherits its parent's high-water mark in ``ru_maxrss`` across
    ``exec``, so a child of a parent that once held 600 MB reports 600 MB whatever it does;
    ``VmHWM`` belongs to the child's own address space.
    """
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def trimmed_rss_bytes() -> int | None:
    """RSS after glibc's ``malloc_trim(0)``; None without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return rss_bytes()


def settings_for(backend: str) -> IndexSettings:
    """The service's index settings with ``backend`` (torch: the defaults, CUDA float16)."""
    return IndexSettings.model_validate({"backend": backend, "snapshots_enabled": False})


def settings_summary(settings: IndexSettings) -> dict[str, Any]:
    """The build-time knobs of the settings' backend, for ``config``."""
    name = settings.backend
    if name == "ivf":
        return {"nlist": settings.ivf_nlist, "train_min": settings.ivf_train_min}
    if name == "hnsw":
        return {"m": settings.hnsw_m, "ef_construction": settings.hnsw_ef_construction}
    if name == "torch":
        return {"device": settings.torch_device, "dtype": settings.torch_dtype}
    return {}


def text(i: int) -> str:
    """A distinct ~200-character prompt for entity ``i``."""
    return f"#{i} {PROSE}"[:TEXT_CHARS]


def updates(entity: Entity, first: int, vectors: np.ndarray) -> list[StoreUpdate]:
    """``StoreUpdate``s of entities ``first, first + 1, ...`` with ``vectors`` (n, dim)."""
    prefix = "p" if entity == "post" else "m"
    batch: list[StoreUpdate] = []
    for j, row in enumerate(vectors):
        i = first + j
        update = EmbeddingUpdate(
            entity=entity,
            entity_id=f"{prefix}{i}",
            version=1,
            dim=int(row.shape[0]),
            vector_b64=EmbeddingUpdate.encode_vector(row),
            model_version=MODEL,
            prompt_version="bench-1",
            attrs=attrs(i) if entity == "post" else {},
            event_time_ms=1_760_000_000_000,
            prompted_at_ms=1_760_000_000_000,
            embedded_at_ms=1_760_000_000_000,
            text=text(i),
        )
        batch.append(StoreUpdate(entity, f"{prefix}{i}", update))
    return batch


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """(n, dim) float32 random unit vectors."""
    rows = rng.standard_normal((n, dim), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def fill(store: IndexStore, entity: Entity, count: int, rng: np.random.Generator) -> None:
    """Apply ``count`` new entities in ``BATCH``-record polls; every one must apply."""
    for start in range(0, count, BATCH):
        rows = unit_vectors(rng, min(BATCH, count - start), store.dim)
        outcomes = store.apply_batch(updates(entity, start, rows), live=False)
        if any(outcome != "applied" for outcome in outcomes):
            raise RuntimeError(f"{entity} batch at {start}: {set(map(str, outcomes))}")


def warm_up(settings: IndexSettings, dim: int) -> None:
    """Build, search and drop a tiny store of the same backend (IVF trains on nlist 8)."""
    tiny = settings.model_copy(update={"ivf_nlist": WARMUP_NLIST})
    store = IndexStore(dim, MODEL, settings=tiny)
    rng = np.random.default_rng(12345)
    fill(store, "post", WARMUP_POSTS, rng)
    fill(store, "member", WARMUP_POSTS // 10, rng)
    store.maintain()
    store.search(unit_vectors(rng, 1, dim)[0], 10)
    del store
    gc.collect()


def measure(backend: str, posts: int, members: int, dim: int, seed: int = 0) -> Reading:
    """Build one store in this process and read its memory (see the module docstring)."""
    settings = settings_for(backend)
    warm_up(settings, dim)
    cuda = _cuda_allocated() if backend == "torch" else None
    before = trimmed_rss_bytes() or rss_bytes()  # the warm-up's freed heap returned first
    started = time.perf_counter()
    store = IndexStore(dim, MODEL, settings=settings)
    rng = np.random.default_rng(seed)
    fill(store, "post", posts, rng)
    gc.collect()
    after_posts = rss_bytes()
    fill(store, "member", members, rng)
    store.maintain()
    build_s = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    peak = max(peak_rss_bytes(), after)  # the kernel's high-water mark lags by a few pages
    counts = store.counts()
    if (counts["posts"], counts["members"]) != (posts, members):
        raise RuntimeError(f"store holds {counts}, expected {posts} posts and {members} members")
    trained = getattr(store.backend, "trained", None)
    return Reading(
        backend=backend,
        posts=posts,
        members=members,
        dim=dim,
        rss_before=before,
        rss_after_posts=after_posts,
        rss_after=after,
        rss_trimmed=trimmed_rss_bytes(),
        peak_rss=peak,
        backend_bytes=int(store.backend.memory_bytes()),
        cuda_bytes=None if cuda is None else _cuda_allocated() - cuda,
        ivf_trained=None if trained is None else bool(trained),
        build_s=build_s,
    )


def _cuda_allocated() -> int:
    import torch

    return int(torch.cuda.memory_allocated())


# --- orchestration (in the parent) ----------------------------------------------------------


def in_child(backend: str, posts: int, members: int, dim: int, seed: int) -> Reading:
    """``measure`` in a fresh interpreter; its stdout's last line is the reading as JSON."""
    command = [sys.executable, "-m", "bench.index_memory", "--child", backend]
    command += ["--posts", str(posts), "--members", str(members), "--dim", str(dim)]
    command += ["--seed", str(seed)]
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    return Reading(**json.loads(done.stdout.strip().splitlines()[-1]))


def cuda_available() -> bool:
    """Whether torch sees CUDA, asked in a throwaway interpreter (importing torch here would
    only make this parent large)."""
    command = [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    return done.stdout.strip().endswith("True")


def backends(requested: str) -> list[str]:
    """The requested backends; torch only where CUDA is available (a note on stderr if not)."""
    names = [name for name in requested.split(",") if name]
    if "torch" in names and not cuda_available():
        print("index_memory: torch skipped (no CUDA)", file=sys.stderr)
        names.remove("torch")
    return names


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=None, help="default: posts / 10")
    parser.add_argument("--backends", default="flat,ivf,hnsw,torch", help="torch needs CUDA")
    parser.add_argument("--dim", type=int, default=DIM)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--linearity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure posts / 2 and print the per-post ratio",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.child:
        members = args.members if args.members is not None else args.posts // 10
        reading = measure(args.child, args.posts, members, args.dim, args.seed)
        sys.stdout.write(json.dumps(asdict(reading)) + "\n")
        return
    sizes = [args.posts // 2, args.posts] if args.linearity else [args.posts]
    for name in backends(args.backends):
        summary = settings_summary(settings_for(name))
        half: Reading | None = None
        for n in sizes:
            members = args.members if args.members is not None else int(n * MEMBERS_PER_POST)
            reading = in_child(name, n, members, args.dim, args.seed)
            report(reading, summary, half)
            half = reading


if __name__ == "__main__":
    main()
