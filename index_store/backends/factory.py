"""Build the backend the settings name, or restore one from what its ``save`` wrote."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from index_store.backends.base import VectorBackend
from index_store.backends.errors import BackendError
from index_store.backends.flat import FlatBackend
from index_store.backends.hnsw import HnswBackend
from index_store.backends.ivf import IvfBackend
from index_store.settings import IndexSettings

if TYPE_CHECKING:
    from index_store.backends.torch_scan import TorchScanBackend

NAMES = ("flat", "ivf", "hnsw", "torch")


def resolve_name(name: str) -> str:
    """``auto`` -> ``torch`` when CUDA is present, else ``flat``; other names are checked."""
    if name == "auto":
        import torch  # lazily: importing torch costs seconds

        return "torch" if torch.cuda.is_available() else "flat"
    if name not in NAMES:
        raise BackendError(f"unknown kNN backend {name!r}; choose one of auto, {', '.join(NAMES)}")
    return name


def make_backend(settings: IndexSettings, dim: int) -> VectorBackend:
    """An empty backend of the kind ``settings.backend`` names, tuned by ``settings``.

    >>> make_backend(IndexSettings(backend="flat"), dim=384).name
    'flat'
    """
    name = resolve_name(settings.backend)
    if name == "flat":
        return FlatBackend(dim)
    if name == "ivf":
        return IvfBackend(dim, settings.ivf_nlist, settings.ivf_nprobe, settings.ivf_train_min)
    if name == "hnsw":
        return HnswBackend(
            dim,
            settings.hnsw_m,
            settings.hnsw_ef_construction,
            settings.hnsw_ef_search,
            settings.hnsw_rebuild_fraction,
        )
    torch_scan = _torch_scan()
    return torch_scan(dim, _checked_device(settings.torch_device), settings.torch_dtype)


def load_backend(name: str, path: Path, settings: IndexSettings, dim: int) -> VectorBackend:
    """Restore the ``name`` backend from ``path`` (written by its ``save``), checking ``dim``.

    Search-time knobs (nprobe, efSearch, the torch device and dtype) come from ``settings``;
    build-time ones (IVF nlist, HNSW M and efConstruction) from the file.
    """
    name = resolve_name(name)
    if name == "flat":
        return FlatBackend.load(path, dim)
    if name == "ivf":
        return IvfBackend.load(
            path, dim, settings.ivf_nlist, settings.ivf_nprobe, settings.ivf_train_min
        )
    if name == "hnsw":
        return HnswBackend.load(path, dim, settings.hnsw_ef_search, settings.hnsw_rebuild_fraction)
    torch_scan = _torch_scan()
    device = _checked_device(settings.torch_device)
    return torch_scan.load(path, dim, device, settings.torch_dtype)


def _torch_scan() -> type[TorchScanBackend]:
    from index_store.backends.torch_scan import TorchScanBackend

    return TorchScanBackend


def _checked_device(device: str) -> str:
    """``device`` if torch can use it here, else a :class:`BackendError` saying what to set."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackendError(
            f"the torch backend is set to device {device!r} but CUDA is not available here; "
            "set FEEDLINE_INDEX_TORCH_DEVICE=cpu or FEEDLINE_INDEX_BACKEND=flat"
        )
    if kind not in ("cpu", "cuda"):
        raise BackendError(f"unsupported torch device {device!r}; use cpu or cuda[:N]")
    return device
