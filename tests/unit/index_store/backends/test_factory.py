"""make_backend / load_backend: the right backend from settings, round trips, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from index_store.backends import (
    BackendError,
    FlatBackend,
    HnswBackend,
    IvfBackend,
    TorchScanBackend,
    load_backend,
    make_backend,
)
from index_store.errors import IndexStoreError
from index_store.settings import IndexSettings

DIM = 32


def settings(**fields) -> IndexSettings:
    base = dict(ivf_nlist=8, ivf_nprobe=8, ivf_train_size=500, hnsw_m=8, torch_device="cpu")
    return IndexSettings(**{**base, "torch_dtype": "float32", **fields})


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("flat", FlatBackend),
        ("ivf", IvfBackend),
        ("hnsw", HnswBackend),
        ("torch", TorchScanBackend),
    ],
)
def test_make_then_save_and_load(name, kind, data, tmp_path: Path) -> None:
    config = settings(backend=name)
    backend = make_backend(config, DIM)
    assert isinstance(backend, kind) and backend.name == name and backend.dim == DIM
    backend.add(data.ids[:1_000], data.vectors[:1_000])
    backend.remove(data.ids[:5])
    backend.save(tmp_path / name)
    loaded = load_backend(name, tmp_path / name, config, DIM)
    assert isinstance(loaded, kind) and len(loaded) == len(backend)
    for got, want in zip(
        loaded.search(data.queries, 10), backend.search(data.queries, 10), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(BackendError, match=f"expects {DIM + 1}-d"):
        load_backend(name, tmp_path / name, config, DIM + 1)


def test_settings_reach_the_backends() -> None:
    ivf = make_backend(settings(backend="ivf"), DIM)
    assert isinstance(ivf, IvfBackend) and (ivf.nlist, ivf.nprobe, ivf.train_min) == (8, 8, 500)
    hnsw = make_backend(settings(backend="hnsw", hnsw_ef_search=7), DIM)
    assert isinstance(hnsw, HnswBackend) and (hnsw.m, hnsw.ef_search) == (8, 7)


def test_auto_picks_torch_only_with_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert make_backend(settings(backend="auto"), DIM).name == "flat"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert make_backend(settings(backend="auto"), DIM).name == "torch"  # device=cpu here


def test_torch_on_cuda_without_cuda_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendError, match="CUDA is not available"):
        make_backend(settings(backend="torch", torch_device="cuda"), DIM)


def test_unknown_name_missing_file_and_wrong_kind(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="unknown kNN backend 'annoy'"):
        load_backend("annoy", tmp_path / "x", settings(), DIM)
    with pytest.raises(BackendError, match="no backend file"):
        load_backend("flat", tmp_path / "missing", settings(), DIM)
    FlatBackend(DIM).save(tmp_path / "flat")
    for name in ("hnsw", "torch"):
        with pytest.raises(IndexStoreError):
            load_backend(name, tmp_path / "flat", settings(), DIM)
    (tmp_path / "junk").write_bytes(b"not an index")
    with pytest.raises(BackendError, match="not a readable"):
        load_backend("flat", tmp_path / "junk", settings(), DIM)
