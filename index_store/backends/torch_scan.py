"""Exact kNN as a masked matmul + top-k in torch (the GPU scan LiNR and x-algorithm use)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from index_store.backends._arrays import as_ids, as_vectors, check_k, grown, lookup
from index_store.backends.errors import BackendError

TorchDtype = Literal["float32", "float16", "bfloat16"]
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
FORMAT = "feedline-torch-v1"
# Scores of one chunk, (B, rows) float32, stay under this, so B x 10M never materialises.
SCORE_CHUNK_BYTES = 256 << 20
# Rows per chunk also stay under this so a CPU upcast of a half-precision chunk is bounded.
MAX_CHUNK_ROWS = 1 << 20


class TorchScanBackend:
    """Every vector in one (capacity, dim) tensor on ``device``; a search scores them all.

    Slots are reused through a free list; ``slot -> id`` lives on the device (to apply an
    ``allowed`` mask by id without a host round trip) and on the host (to map results).
    Storage may be half precision; scores are float32 (CUDA: fp32-accumulating matmul).
    """

    name = "torch"
    exact = True

    def __init__(
        self, dim: int, device: str = "cpu", dtype: TorchDtype = "float32", capacity: int = 1024
    ) -> None:
        self.dim = dim
        self.device = torch.device(device)
        self.dtype = DTYPES[dtype]
        capacity = max(capacity, 1)
        self._x = torch.zeros((capacity, dim), dtype=self.dtype, device=self.device)
        self._live = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self._slot_ids = torch.full((capacity,), -1, dtype=torch.int64, device=self.device)
        self._slot_to_id = np.full(capacity, -1, dtype=np.int64)  # host mirror of _slot_ids
        self._id_to_slot = np.full(0, -1, dtype=np.int64)
        self._free: list[int] = []  # slots below _used that were freed by remove
        self._used = 0  # slots ever handed out (high-water mark)

    def __len__(self) -> int:
        return self._used - len(self._free)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Copy ``vectors`` (n, dim) into free slots (reused first, then new ones)."""
        ids = as_ids(ids)
        rows = torch.from_numpy(as_vectors(vectors, self.dim, len(ids)).copy())
        self._add_rows(ids, rows)

    def _add_rows(self, ids: np.ndarray, rows: torch.Tensor) -> None:
        if not ids.size:
            return
        slots = self._take_slots(len(ids))
        slots_t = torch.from_numpy(slots).to(self.device)
        self._x[slots_t] = rows.to(device=self.device, dtype=self.dtype)
        self._live[slots_t] = True
        self._slot_ids[slots_t] = torch.from_numpy(ids).to(self.device)
        self._slot_to_id[slots] = ids
        self._id_to_slot = grown(self._id_to_slot, int(ids.max()) + 1, -1)
        self._id_to_slot[ids] = slots

    def _take_slots(self, n: int) -> np.ndarray:
        """``n`` slot numbers: freed ones first, then fresh ones (growing the tensors)."""
        reused = [self._free.pop() for _ in range(min(n, len(self._free)))]
        fresh = np.arange(self._used, self._used + n - len(reused), dtype=np.int64)
        self._used += len(fresh)
        self._ensure_capacity(self._used)
        return np.concatenate([np.asarray(reused, dtype=np.int64), fresh])

    def _ensure_capacity(self, needed: int) -> None:
        """Double the slot tensors until ``needed`` slots fit (one copy each time)."""
        capacity = self._x.shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        self._x = _grow(self._x, capacity, 0)
        self._live = _grow(self._live, capacity, False)
        self._slot_ids = _grow(self._slot_ids, capacity, -1)
        self._slot_to_id = grown(self._slot_to_id, capacity, -1)

    def replace(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """New vectors for present ``ids``: removal, then insertion."""
        self.remove(ids)
        self.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> None:
        """Free the slots of ``ids``; unknown ones are ignored."""
        slots = lookup(self._id_to_slot, as_ids(ids))
        slots = np.unique(slots[slots >= 0])
        if not slots.size:
            return
        slots_t = torch.from_numpy(slots).to(self.device)
        self._live[slots_t] = False
        self._slot_ids[slots_t] = -1
        self._id_to_slot[self._slot_to_id[slots]] = -1
        self._slot_to_id[slots] = -1
        self._free.extend(slots.tolist())

    @torch.inference_mode()
    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k: scores of chunks of slots, masked to live & allowed, merged top-k."""
        queries_t = torch.from_numpy(as_vectors(queries, self.dim).copy()).to(self.device)
        k = check_k(k)
        mask = self._eligible(allowed)  # (used,) bool, or None when every used slot is
        rows = max(1, min(MAX_CHUNK_ROWS, SCORE_CHUNK_BYTES // (4 * queries_t.shape[0])))
        best_scores = torch.empty((queries_t.shape[0], 0), device=self.device)  # (B, <=k)
        best_slots = torch.empty((queries_t.shape[0], 0), dtype=torch.int64, device=self.device)
        for start in range(0, self._used, rows):
            stop = min(start + rows, self._used)
            scores = self._scores(queries_t, start, stop)  # (B, stop - start)
            if mask is not None:
                scores.masked_fill_(~mask[start:stop], float("-inf"))
            top_scores, top_slots = scores.topk(min(k, stop - start), dim=1)
            merged = torch.cat([best_scores, top_scores], dim=1)
            slots = torch.cat([best_slots, top_slots + start], dim=1)
            best_scores, order = merged.topk(min(k, merged.shape[1]), dim=1)
            best_slots = slots.gather(1, order)
        return self._results(best_scores, best_slots, k)

    def _scores(self, queries: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """float32 (B, stop - start) inner products with slots ``start:stop``."""
        chunk = self._x[start:stop]  # (rows, dim)
        if self.dtype == torch.float32:
            return queries @ chunk.T
        if self.device.type == "cuda":
            # Half-precision inputs, float32 accumulation and output: no upcast copy of X.
            return torch.mm(queries.to(self.dtype), chunk.T, out_dtype=torch.float32)
        return queries @ chunk.float().T

    def _eligible(self, allowed: np.ndarray | None) -> torch.Tensor | None:
        """(used,) bool on the device: live and allowed[slot's id]; None if all slots are."""
        if allowed is None:
            return None if not self._free else self._live[: self._used]
        allowed_np = np.asarray(allowed, dtype=bool)
        # One extra False cell that freed slots and ids past the mask's end point at.
        padded = torch.zeros(len(allowed_np) + 1, dtype=torch.bool)
        padded[: len(allowed_np)] = torch.from_numpy(allowed_np.copy())
        padded = padded.to(self.device)
        slot_ids = self._slot_ids[: self._used]
        outside = (slot_ids < 0) | (slot_ids >= len(allowed_np))
        index = torch.where(outside, len(allowed_np), slot_ids)
        return self._live[: self._used] & padded[index]

    def _results(
        self, scores: torch.Tensor, slots: torch.Tensor, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map slots to ids on the host; pad to (B, k) with -inf / -1."""
        batch = scores.shape[0]
        out_scores = np.full((batch, k), -np.inf, dtype=np.float32)
        out_ids = np.full((batch, k), -1, dtype=np.int64)
        found = scores.shape[1]
        out_scores[:, :found] = scores.float().cpu().numpy()
        out_ids[:, :found] = self._slot_to_id[slots.cpu().numpy()]
        out_ids[np.isneginf(out_scores)] = -1
        return out_scores, out_ids

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of ``ids`` (n,) as (n, dim) float32 (rounded if stored in half)."""
        ids = as_ids(ids)
        slots = lookup(self._id_to_slot, ids)
        if (slots < 0).any():
            raise BackendError(f"reconstruct: ids {ids[slots < 0][:5]} are not present")
        rows = self._x[torch.from_numpy(slots).to(self.device)]
        return rows.float().cpu().numpy()

    def ids(self) -> np.ndarray:
        """Every live id."""
        slot_ids = self._slot_to_id[: self._used]
        return slot_ids[slot_ids >= 0].copy()

    def memory_bytes(self) -> int:
        """The whole slot capacity (vectors, live flag, device and host slot ids) + id map."""
        capacity = self._x.shape[0]
        per_slot = self.dim * self._x.element_size() + 1 + 8 + 8
        return capacity * per_slot + self._id_to_slot.nbytes

    def maintain(self) -> bool:
        """Nothing to maintain (freed slots are reused by later adds)."""
        return False

    def save(self, path: Path) -> None:
        """``torch.save`` of the live ids and their vectors in the storage dtype."""
        slots = np.flatnonzero(self._slot_to_id[: self._used] >= 0)
        state = {
            "format": FORMAT,
            "dim": self.dim,
            "ids": torch.from_numpy(self._slot_to_id[slots].copy()),
            "vectors": self._x[torch.from_numpy(slots).to(self.device)].cpu(),
        }
        torch.save(state, path)

    @classmethod
    def load(
        cls, path: Path, dim: int, device: str = "cpu", dtype: TorchDtype = "float32"
    ) -> TorchScanBackend:
        """Read what :meth:`save` wrote onto ``device`` (cast to ``dtype`` if it differs)."""
        if not Path(path).is_file():
            raise BackendError(f"no backend file at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, ValueError, pickle.UnpicklingError) as error:
            raise BackendError(f"{path} is not a readable torch backend file: {error}") from error
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise BackendError(f"{path} is not a torch backend file")
        if state["dim"] != dim:
            raise BackendError(
                f"{path} holds {state['dim']}-d vectors but the index expects {dim}-d"
            )
        ids = state["ids"].numpy()
        backend = cls(dim, device, dtype, capacity=max(len(ids), 1))
        backend._add_rows(ids, state["vectors"])
        return backend


def _grow(tensor: torch.Tensor, capacity: int, fill: float | bool) -> torch.Tensor:
    """``tensor`` copied into a longer one (rows past the old end are ``fill``)."""
    out = torch.full((capacity, *tensor.shape[1:]), fill, dtype=tensor.dtype, device=tensor.device)
    out[: tensor.shape[0]] = tensor
    return out
