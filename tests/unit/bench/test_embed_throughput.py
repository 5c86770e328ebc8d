"""``bench.embed_throughput``'s choice of variants: torch (the cosine reference) always
first, the device's defaults, and a clear refusal of unknown names."""

from __future__ import annotations

import pytest

from bench.embed_throughput import CPU_DEFAULT, CUDA_DEFAULT, chosen_variants


def test_the_defaults_follow_the_device_and_torch_leads() -> None:
    assert chosen_variants(None, cuda=False) == list(CPU_DEFAULT)
    assert chosen_variants(None, cuda=True) == list(CUDA_DEFAULT)
    assert chosen_variants("onnx,torch-bf16,onnx", cuda=False) == ["torch", "onnx", "torch-bf16"]


def test_an_unknown_backend_is_refused_with_the_known_ones() -> None:
    with pytest.raises(SystemExit, match=r"unknown backend.*tensorrt.*known: torch"):
        chosen_variants("torch,tensorrt", cuda=False)
