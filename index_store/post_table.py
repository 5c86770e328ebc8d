"""Everything the store knows about indexed posts besides their vectors, as columns.

Columns are numpy arrays indexed by the post's persistent int id, so an attribute filter over
a million posts is a handful of vectorised comparisons producing the id mask the backends
honour inside their scan. ``author_id``, ``format``, ``language`` and ``created_at_ms`` are
the filterable attributes; any other attribute is kept as given, per post.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from index_store.filters import PostFilter
from index_store.id_map import IdMap
from index_store.vocabulary import ABSENT, NONE, Vocabulary
from schemas import AttrValue, EmbeddingUpdate

CODED_ATTRS = ("author_id", "format", "language")
"""String attributes stored as vocabulary codes."""
TIME_ABSENT = np.iinfo(np.int64).min
TIME_NONE = TIME_ABSENT + 1


@dataclass(frozen=True)
class PostRecord:
    """What the store knows about an indexed post besides its vector."""

    version: int
    attrs: dict[str, AttrValue]
    model_version: str
    prompt_version: str
    event_time_ms: int
    indexed_at_ms: int


class PostTable:
    """Columns of post metadata, indexed by int id; only ``live`` rows are meaningful."""

    def __init__(self, capacity: int = 1024) -> None:
        self.vocab = {name: Vocabulary() for name in (*CODED_ATTRS, "model", "prompt")}
        self.live = np.zeros(capacity, dtype=bool)
        self.version = np.zeros(capacity, dtype=np.int64)
        self.created_at = np.full(capacity, TIME_ABSENT, dtype=np.int64)
        self.event_time = np.zeros(capacity, dtype=np.int64)
        self.indexed_at = np.zeros(capacity, dtype=np.int64)
        self.codes = {name: np.full(capacity, ABSENT, dtype=np.int32) for name in self.vocab}
        self.extra: dict[int, dict[str, AttrValue]] = {}
        self.count = 0

    def _columns(self) -> list[np.ndarray]:
        return [
            self.live,
            self.version,
            self.created_at,
            self.event_time,
            self.indexed_at,
            *self.codes.values(),
        ]

    def _reserve(self, size: int) -> None:
        """Grow every column (doubling) so ids below ``size`` fit."""
        capacity = len(self.live)
        if size <= capacity:
            return
        while capacity < size:
            capacity *= 2
        fill: dict[str, Any] = {"created_at": TIME_ABSENT}
        for name in ("live", "version", "created_at", "event_time", "indexed_at"):
            old = getattr(self, name)
            grown = np.full(capacity, fill.get(name, 0), dtype=old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)
        for name, old in self.codes.items():
            grown = np.full(capacity, ABSENT, dtype=np.int32)
            grown[: len(old)] = old
            self.codes[name] = grown

    def version_of(self, int_id: int) -> int | None:
        """The version held for a live post, else None."""
        if int_id < len(self.live) and self.live[int_id]:
            return int(self.version[int_id])
        return None

    def put(self, int_id: int, update: EmbeddingUpdate, indexed_at_ms: int) -> None:
        """Record (or replace) the metadata of post ``int_id`` from its update."""
        self._reserve(int_id + 1)
        if not self.live[int_id]:
            self.count += 1
        self.live[int_id] = True
        self.version[int_id] = update.version
        self.event_time[int_id] = update.event_time_ms
        self.indexed_at[int_id] = indexed_at_ms
        self.codes["model"][int_id] = self.vocab["model"].code(update.model_version)
        self.codes["prompt"][int_id] = self.vocab["prompt"].code(update.prompt_version)
        self._put_attrs(int_id, update.attrs)

    def _put_attrs(self, int_id: int, attrs: dict[str, AttrValue]) -> None:
        extra = {k: v for k, v in attrs.items() if k not in (*CODED_ATTRS, "created_at_ms")}
        for name in CODED_ATTRS:
            value = attrs.get(name, ...)
            if value is ... or not (value is None or isinstance(value, str)):
                self.codes[name][int_id] = ABSENT
                if value is not ...:
                    extra[name] = value  # a non-string value is kept, not coded
            else:
                self.codes[name][int_id] = self.vocab[name].code(value)
        created = attrs.get("created_at_ms", ...)
        if created is None:
            self.created_at[int_id] = TIME_NONE
        elif isinstance(created, int) and not isinstance(created, bool):
            self.created_at[int_id] = created
        else:
            self.created_at[int_id] = TIME_ABSENT
            if created is not ...:
                extra["created_at_ms"] = created
        if extra:
            self.extra[int_id] = extra
        else:
            self.extra.pop(int_id, None)

    def clear(self, int_id: int) -> None:
        """Forget post ``int_id`` (deleted)."""
        if int_id < len(self.live) and self.live[int_id]:
            self.live[int_id] = False
            self.count -= 1
            self.extra.pop(int_id, None)

    def attrs(self, int_id: int) -> dict[str, AttrValue]:
        """The attribute dict the post was indexed with."""
        attrs: dict[str, AttrValue] = {}
        for name in CODED_ATTRS:
            code = int(self.codes[name][int_id])
            if code != ABSENT:
                attrs[name] = self.vocab[name].value(code)
        created = int(self.created_at[int_id])
        if created != TIME_ABSENT:
            attrs["created_at_ms"] = None if created == TIME_NONE else created
        attrs.update(self.extra.get(int_id, {}))
        return attrs

    def record(self, int_id: int) -> PostRecord:
        """The metadata of live post ``int_id``."""
        return PostRecord(
            version=int(self.version[int_id]),
            attrs=self.attrs(int_id),
            model_version=self.vocab["model"].value(int(self.codes["model"][int_id])) or "",
            prompt_version=self.vocab["prompt"].value(int(self.codes["prompt"][int_id])) or "",
            event_time_ms=int(self.event_time[int_id]),
            indexed_at_ms=int(self.indexed_at[int_id]),
        )

    def live_ids(self) -> np.ndarray:
        """Ids of every live post, ascending, int64."""
        return np.flatnonzero(self.live).astype(np.int64)

    def mask(self, flt: PostFilter, id_map: IdMap) -> np.ndarray:
        """Bool mask by int id of the live posts that pass ``flt``."""
        mask = self.live.copy()
        for name, allowed in (
            ("language", flt.languages),
            ("format", flt.formats),
            ("author_id", flt.authors),
        ):
            if allowed is not None:
                mask &= np.isin(self.codes[name], self.vocab[name].known_codes(allowed))
        if flt.exclude_authors:
            excluded = self.vocab["author_id"].known_codes(flt.exclude_authors)
            mask &= ~np.isin(self.codes["author_id"], excluded)
        if flt.created_after_ms is not None:
            mask &= self.created_at >= flt.created_after_ms
        if flt.exclude_posts:
            mask[id_map.ids(flt.exclude_posts)] = False
        return mask

    def load(self, ids: np.ndarray, columns: PostColumns) -> None:
        """Fill rows ``ids`` at once (restoring a snapshot); attributes beyond the columns
        come from ``columns.attrs`` where given."""
        if len(ids) == 0:
            return
        self._reserve(int(ids.max()) + 1)
        self.live[ids] = True
        self.count += len(ids)
        self.version[ids] = columns.version
        self.event_time[ids] = columns.event_time
        self.indexed_at[ids] = columns.indexed_at
        self.created_at[ids] = columns.created_at
        for name, values in columns.strings.items():
            self.codes[name][ids] = _encode(self.vocab[name], values)
        for int_id, attrs in columns.attrs.items():
            self._put_attrs(int_id, attrs)


@dataclass(frozen=True)
class PostColumns:
    """Metadata of many posts at once, aligned with an id array (snapshot restore)."""

    version: np.ndarray
    event_time: np.ndarray
    indexed_at: np.ndarray
    created_at: np.ndarray
    """Epoch ms, ``TIME_NONE`` where unknown."""
    strings: dict[str, pa.Array]
    """``author_id``, ``format``, ``language``, ``model``, ``prompt`` values (nullable)."""
    attrs: dict[int, dict[str, AttrValue]]
    """Exact attribute dicts of the posts whose attributes the columns do not capture."""


def _encode(vocab: Vocabulary, values: pa.Array) -> np.ndarray:
    """Vocabulary codes of a string column, one Python call per distinct value."""
    encoded = pc.dictionary_encode(values)
    codes = np.array([vocab.code(v) for v in encoded.dictionary.to_pylist()] + [NONE], np.int32)
    indices = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return codes[indices]
