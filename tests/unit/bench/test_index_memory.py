"""The arithmetic and output of ``bench.index_memory``, and its child protocol on a tiny store."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from bench import index_memory
from bench.index_memory import Reading, figures, gb_per_million, per_post, report

FIELDS = {
    "bench",
    "config",
    "metric",
    "value",
    "unit",
    "baseline",
    "baseline_value",
    "ratio",
    "machine",
}
MB = 1_000_000
READING = Reading(
    backend="flat",
    posts=1_000,
    members=100,
    dim=384,
    rss_before=50 * MB,
    rss_after_posts=51_800_000,  # posts: 1,800 bytes each
    rss_after=52 * MB,  # members: 200,000 / 100 = 2,000 bytes each; all: 2,000 per post
    rss_trimmed=51_700_000,  # 1,700 per post
    peak_rss=53 * MB,  # 3,000 per post
    backend_bytes=1_584_000,
    cuda_bytes=None,
    ivf_trained=None,
    build_s=1.5,
)


def test_per_post_and_per_million() -> None:
    assert per_post(10 * MB, 13 * MB, 1_500) == 2_000.0
    assert gb_per_million(1_536) == pytest.approx(1.536)
    assert gb_per_million(per_post(0, 3 * MB, 1_000)) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        per_post(0, 1, 0)


def test_figures_of_a_reading() -> None:
    assert figures(READING) == pytest.approx(
        {
            "rss_bytes_per_post": 2_000.0,
            "rss_gb_per_million_posts": 2.0,
            "peak_rss_gb_per_million_posts": 3.0,
            "backend_bytes_per_post": 1_584.0,
            "rss_bytes_per_post_after_malloc_trim": 1_700.0,
            "member_rss_bytes_each": 2_000.0,
        }
    )
    gpu = replace(READING, backend="torch", cuda_bytes=800_000, rss_trimmed=None, members=0)
    assert figures(gpu)["cuda_bytes_per_post"] == 800.0
    assert "rss_bytes_per_post_after_malloc_trim" not in figures(gpu)
    assert "member_rss_bytes_each" not in figures(gpu)


def test_report_lines_follow_the_convention(capsys: pytest.CaptureFixture[str]) -> None:
    half = replace(READING, posts=500, members=50, rss_after=51_250_000)  # 2,500 per post
    report(READING, {"nlist": 7}, half)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_metric = {line["metric"]: line for line in lines}
    assert len(by_metric) == len(lines) == 7
    for line in lines:
        assert set(line) == FIELDS
        assert line["bench"] == "index_memory"
        assert "cores" in line["machine"]
        assert line["config"]["posts"] == 1_000
        assert line["config"]["members"] == 100
        assert line["config"]["settings"] == {"nlist": 7}
        assert line["config"]["readings_bytes"]["peak_rss"] == 53 * MB
    rss = by_metric["rss_bytes_per_post"]
    assert (rss["value"], rss["unit"], rss["baseline_value"]) == (2_000.0, "bytes", 1_536)
    assert rss["baseline"] == "float32 vectors alone"
    assert rss["ratio"] == round(2_000 / 1_536, 4)
    gb = by_metric["rss_gb_per_million_posts"]
    assert (gb["value"], gb["unit"], gb["baseline_value"]) == (2.0, "GB", 1.536)
    assert by_metric["peak_rss_gb_per_million_posts"]["value"] == 3.0
    assert by_metric["backend_bytes_per_post"]["ratio"] == round(1_584 / 1_536, 4)
    linear = by_metric["linearity_rss_bytes_per_post"]
    assert linear["baseline"] == "rss_bytes_per_post at 500 posts"
    assert (linear["value"], linear["baseline_value"], linear["ratio"]) == (2_000.0, 2_500.0, 0.8)
    assert linear["config"]["half_posts"] == 500


RSS_PROBE = """
import json
import numpy as np
from bench import index_memory
before = index_memory.rss_bytes()
block = np.ones(64_000_000 // 8)  # 64 MB, every page written
print(json.dumps([before, index_memory.rss_bytes(), index_memory.peak_rss_bytes()]))
"""


def test_rss_sees_memory_touched_outside_python_objects() -> None:
    # In a fresh interpreter: inside a test worker, memory an earlier test freed but the
    # allocator kept resident can take the block without RSS moving (CI once read 0 growth).
    probe = subprocess.run(
        [sys.executable, "-c", RSS_PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    before, after, peak = json.loads(probe.stdout.splitlines()[-1])
    assert 60 * MB < after - before < 80 * MB
    assert peak >= before + 60 * MB


def test_the_child_measures_a_real_store(capsys: pytest.CaptureFixture[str]) -> None:
    index_memory.main(["--child", "flat", "--posts", "300", "--members", "30"])
    reading = Reading(**json.loads(capsys.readouterr().out.splitlines()[-1]))
    assert (reading.backend, reading.posts, reading.members, reading.dim) == ("flat", 300, 30, 384)
    assert reading.backend_bytes == 300 * (4 * 384 + 8 + 40)
    assert reading.ivf_trained is None
    assert 0 < reading.rss_before <= reading.peak_rss
    assert reading.rss_after <= reading.peak_rss


def test_an_ivf_below_its_training_threshold_says_so() -> None:
    reading = index_memory.measure("ivf", 300, 0, 384)
    assert reading.ivf_trained is False
    assert reading.backend_bytes == 300 * (4 * 384 + 8 + 40)  # held flat until trained


def test_torch_is_skipped_without_cuda(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(index_memory, "cuda_available", lambda: False)
    assert index_memory.backends("flat,torch,hnsw") == ["flat", "hnsw"]
    assert "torch skipped" in capsys.readouterr().err
