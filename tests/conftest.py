"""Settings shared by every test: nothing downloads, nothing leaks between tests."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The torch runtime's default precision depends on the CPU (bfloat16 where it has AMX):
# tests compare embeddings at float32 tolerances and must pass alike on every machine, so
# they run float32 unless a test asks for another precision (tests/unit/models/test_encoder.py).
os.environ.setdefault("FEEDLINE_ENCODER_TORCH_DTYPE", "float32")


# The longest test files start first: `make test` runs two xdist workers (``--dist loadfile``,
# one file per worker at a time), and a long file dealt out last would run alone at the end.
# `make test` passes --no-loadscope-reorder, else xdist deals out the files with the most tests
# first. Measured on the 2-core machine, longest first.
LONG_FILES = (
    "tests/integration/test_soak.py",
    "tests/integration/test_broker_wait.py",
    "tests/integration/test_local_broker.py",
    "tests/integration/test_pipeline.py",
    "tests/integration/test_prompt_worker.py",
    "tests/integration/test_fencing.py",
    "tests/unit/models/test_onnx_backend.py",
    "tests/integration/test_gr_training.py",
    "tests/unit/feedline/test_dual_cli.py",
    "tests/integration/test_lag_exporter.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the tests of ``LONG_FILES`` to the front, in that order (stable otherwise)."""
    rank = {path: n for n, path in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONG_FILES)))


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, each worker computes on its share of the cores: torch's default (every
    core per process) made two workers' training steps wait on each other's threads (the GR
    learning test took 189 s instead of 34). Role processes the tests start keep defaults."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
