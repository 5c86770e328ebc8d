"""Output convention of every benchmark (DESIGN.md "Benchmarks"): one JSON object per line,
``{bench, config, metric, value, unit, baseline, baseline_value, ratio, machine}``."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any


def machine() -> str:
    """CPU model and core count (and the GPU, when torch sees one)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line)
    except (OSError, StopIteration):
        pass
    described = f"cpu: {model}, {os.cpu_count()} cores"
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            described += f"; gpu: {torch.cuda.get_device_name(0)}"
    return described


def emit(
    bench: str,
    config: dict[str, Any],
    metric: str,
    value: float,
    unit: str,
    baseline: str | None = None,
    baseline_value: float | None = None,
) -> None:
    """Print one result line; ``ratio`` is value / baseline_value when both exist."""
    ratio = value / baseline_value if baseline_value else None
    record = {
        "bench": bench,
        "config": config,
        "metric": metric,
        "value": round(value, 6),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": None if baseline_value is None else round(baseline_value, 6),
        "ratio": None if ratio is None else round(ratio, 4),
        "machine": machine(),
    }
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
