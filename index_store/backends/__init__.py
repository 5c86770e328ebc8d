"""kNN backends behind one interface (:class:`VectorBackend`): FAISS flat (exact), IVF and
HNSW (approximate), and an exact torch scan for GPUs; plus an exact scan over an id subset."""

from typing import TYPE_CHECKING

from index_store.backends._faiss import omp_threads
from index_store.backends.base import VectorBackend
from index_store.backends.errors import BackendError
from index_store.backends.factory import load_backend, make_backend
from index_store.backends.flat import FlatBackend
from index_store.backends.hnsw import HnswBackend
from index_store.backends.ivf import IvfBackend
from index_store.backends.subset import exact_subset_search

if TYPE_CHECKING:
    from index_store.backends.torch_scan import TorchScanBackend

__all__ = [
    "BackendError",
    "FlatBackend",
    "HnswBackend",
    "IvfBackend",
    "TorchScanBackend",
    "VectorBackend",
    "exact_subset_search",
    "load_backend",
    "make_backend",
    "omp_threads",
]


def __getattr__(name: str) -> object:
    # torch takes seconds to import; only users of the torch backend pay for it.
    if name == "TorchScanBackend":
        from index_store.backends.torch_scan import TorchScanBackend

        return TorchScanBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
