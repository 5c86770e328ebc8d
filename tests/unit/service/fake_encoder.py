"""A stand-in text encoder for service tests: no model load, vectors fixed per text."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class FakeEncoder:
    """Deterministic unit vectors per text; thread-safe."""

    model_version: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([unit(f"{self.model_version}/{t}", self.dim) for t in texts])


def unit(seed: str, dim: int) -> np.ndarray:
    """A unit vector derived from ``seed``."""
    vector = np.random.default_rng(zlib.crc32(seed.encode())).standard_normal(dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)
