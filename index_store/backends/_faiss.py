"""FAISS calls whose Python signatures the stubs bundled with faiss-cpu get wrong.

The SWIG wrappers accept keyword fields on ``SearchParameters*``, an array for
``IDSelectorBitmap`` and ``DirectMap``; the stubs do not, so these go through ``Any``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, cast

import faiss
import numpy as np

_faiss = cast(Any, faiss)
ParamsKind = Literal["SearchParameters", "SearchParametersIVF", "SearchParametersHNSW"]


BLAS_QUERY_THRESHOLD = 20


def use_blas_for_query_batches() -> None:
    """Let FAISS's exact scan use BLAS (sgemm) from 20 queries per call.

    faiss-cpu 1.15 ships a threshold of 128,000 queries, so batched flat search ran its
    one-query-at-a-time kernels: 100 queries/s at 200k x 384 on 2 cores instead of ~1,700.
    The setting is process-wide, and only changes how exact distances are computed.
    """
    _faiss.cvar.distance_compute_blas_threshold = BLAS_QUERY_THRESHOLD


@contextmanager
def omp_threads(threads: int) -> Iterator[None]:
    """FAISS's OpenMP threads for the calls inside, in the calling thread only.

    libgomp keeps the thread count per OS thread (``omp_set_num_threads`` in one thread
    leaves the others' as they were; checked in ``tests/unit/index_store/test_store.py``), so
    a query thread can go single-threaded while the thread applying update batches keeps
    every core. Why a single query wants one thread: the search still opens a parallel
    region, whose idle workers then spin (libgomp's default wait policy) for about as long
    as the search took, so the query service burned twice the CPU per request it needed
    (``bench/query_http.py``'s ``server_cpu_per_request``) and fought the event loop for
    the two cores. ``threads <= 0`` leaves the count alone.
    """
    if threads <= 0:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def search_params(kind: ParamsKind, bits: np.ndarray | None, **fields: int) -> Any:
    """``faiss.<kind>(**fields)`` with ``sel`` a bitmap selector over ``bits`` when given.

    ``IDSelectorBitmap(bits)`` reads bit ``i`` as ``bits[i >> 3] >> (i & 7) & 1`` and takes
    ``n`` in bytes (verified); ids past ``8 * len(bits)`` are not members. The one-argument
    constructor keeps a reference to ``bits`` and the params keep one to the selector, so the
    buffer outlives the search; callers still hold ``bits`` until the search returns.
    """
    params = getattr(_faiss, kind)(**fields)
    if bits is not None:
        params.sel = _faiss.IDSelectorBitmap(bits)
    return params


def remove_by_id(index: Any, ids: np.ndarray) -> int:
    """Remove ``ids`` through an ``IDSelectorArray`` (the only selector a hashtable direct
    map accepts); returns how many were present."""
    return int(index.remove_ids(_faiss.IDSelectorArray(ids)))


def use_hashtable_direct_map(index: Any) -> None:
    """Let ``reconstruct``/``remove_ids`` find ids in an IVF without a scan."""
    index.set_direct_map_type(_faiss.DirectMap.Hashtable)
