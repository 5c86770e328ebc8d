"""Amazon review datasets (McAuley lab, 2014 and 2018 releases) and their LRD/ReChorus split.

Two layouts are read, chosen by what the directory holds:

**Raw dumps** (``reviews_<Category>_5.json[.gz]`` or ``<Category>_5.json[.gz]``, one review
per line with ``reviewerID``, ``asin``, ``unixReviewTime``, optional ``overall``; or a
ratings CSV ``user,item,rating,timestamp`` without header; plus ``meta_<Category>.json[.gz]``
with ``asin``, ``title``, ``brand``, ``categories`` (2014: a list of category paths) or
``category`` (2018: one path), ``description`` (a string or a list of strings)). The 2014
metadata is Python-literal dicts, not JSON; both are accepted. Every review is a positive
interaction at its review day. The split is derived (leave-one-out by time).

**LRD / ReChorus** (``train.csv``, ``dev.csv``, ``test.csv``: TSV ``user_id item_id time``,
dev and test with ``neg_items``, a Python list of 99 sampled item ids; ``<X>.item2index``:
``ASIN<TAB>item_id``; ``<X>.text``: ``id<TAB>text`` by ASIN). Posts are keyed by ASIN. When
``<X>.item.json`` (APAO/LC-Rec item metadata by APAO index) and ``apao_item_to_asin.tsv``
(``apao_item_idx asin lrd_item_id``) are present too, titles, brands, categories and
descriptions come from there (HTML entities unescaped); otherwise the ``.text`` line is the
title. The dev and test rows are the held-out targets with their negatives, so the split is
exactly the published one.

Example::

    dataset = read_amazon(Path("data/amazon_office_2014"), RowErrors(ImportReport()))
    dataset.counts()   # {"items": 2420, "members": 4905, "interactions": 53258, ...}
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from feedline.importers.dataset import (
    HeldOut,
    ImportedDataset,
    ImportFormatError,
    Interaction,
    Item,
    RowErrors,
    Stage,
)

DAY_MS = 86_400_000
LRD_SPLITS: tuple[tuple[str, Stage | None], ...] = (
    ("train.csv", None),
    ("dev.csv", "valid"),
    ("test.csv", "test"),
)


def read_amazon(directory: Path, errors: RowErrors) -> ImportedDataset:
    """The dataset in ``directory``: the LRD layout when ``train.csv`` is there, else raw dumps.

    Raises:
        ImportFormatError: neither layout is complete, or (strict mode) a bad row.
    """
    if not directory.is_dir():
        raise ImportFormatError(f"{directory}: not a directory")
    if (directory / "train.csv").is_file():
        return _read_lrd(directory, errors)
    return _read_dumps(directory, errors)


# ---------- LRD / ReChorus layout ----------


def _read_lrd(directory: Path, errors: RowErrors) -> ImportedDataset:
    prefix = _single(directory, "*.item2index", "an item map <X>.item2index")
    name = prefix.name.removesuffix(".item2index")
    index_to_asin = _item_index(prefix, errors)
    items = _lrd_items(directory, name, index_to_asin, errors)
    interactions: list[Interaction] = []
    heldout: list[HeldOut] = []
    for file_name, stage in LRD_SPLITS:
        file = directory / file_name
        if not file.is_file():
            raise ImportFormatError(f"{file}: missing (the LRD layout needs train, dev and test)")
        for line, row in _tsv_rows(file, errors, stage is not None):
            parsed = _lrd_row(row, index_to_asin, items, stage is not None)
            if isinstance(parsed, str):
                errors.bad(file, line, parsed)
                continue
            member, asin, ts_ms, negatives = parsed
            interactions.append(Interaction(member, asin, ts_ms))
            if stage is not None:
                heldout.append(HeldOut(member, stage, asin, ts_ms, negatives))
            errors.imported(file)
    interactions.sort(key=lambda i: i.ts_ms)  # stable: file order (train, dev, test) on ties
    return ImportedDataset(
        name=f"amazon:{name}",
        source_format="amazon",
        items=items,
        interactions=interactions,
        heldout=heldout,
        report=errors.report,
    )


def _item_index(file: Path, errors: RowErrors) -> dict[str, str]:
    index_to_asin: dict[str, str] = {}
    with _open(file) as handle:
        for line, text in enumerate(handle, start=1):
            errors.read(file)
            fields = text.rstrip("\n").split("\t")
            if len(fields) != 2 or not fields[0] or not fields[1].strip().isdigit():
                errors.bad(file, line, f"expected ASIN<TAB>item_id, got {text.strip()[:80]!r}")
                continue
            index_to_asin[fields[1].strip()] = fields[0]
            errors.imported(file)
    return index_to_asin


def _lrd_items(
    directory: Path, name: str, index_to_asin: dict[str, str], errors: RowErrors
) -> dict[str, Item]:
    titles = _lrd_text(directory / f"{name}.text", errors)
    rich = _apao_items(directory, name, errors)
    items: dict[str, Item] = {}
    for asin in index_to_asin.values():
        if asin in rich:
            items[asin] = rich[asin]
        else:
            items[asin] = Item(item_id=asin, title=titles.get(asin, ""))
    return items


def _lrd_text(file: Path, errors: RowErrors) -> dict[str, str]:
    if not file.is_file():
        raise ImportFormatError(f"{file}: missing (item texts, header 'id<TAB>text')")
    titles: dict[str, str] = {}
    for line, row in _tsv_rows(file, errors, False, columns=("id", "text")):
        if not row["id"]:
            errors.bad(file, line, "empty id")
            continue
        titles[row["id"]] = row["text"] or ""
        errors.imported(file)
    return titles


def _apao_items(directory: Path, name: str, errors: RowErrors) -> dict[str, Item]:
    """Rich metadata by ASIN from APAO's ``<X>.item.json``, when it and its map are present."""
    meta_file, map_file = directory / f"{name}.item.json", directory / "apao_item_to_asin.tsv"
    if not (meta_file.is_file() and map_file.is_file()):
        return {}
    to_asin: dict[str, str] = {}
    for line, row in _tsv_rows(map_file, errors, False, columns=("apao_item_idx", "asin")):
        if not row["asin"]:
            errors.bad(map_file, line, "empty asin")
            continue
        to_asin[row["apao_item_idx"]] = row["asin"]
        errors.imported(map_file)
    try:
        document = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ImportFormatError(f"{meta_file}: not a JSON object of items: {error}") from None
    if not isinstance(document, dict):
        raise ImportFormatError(f"{meta_file}: expected a JSON object keyed by item index")
    items: dict[str, Item] = {}
    for index, meta in document.items():
        errors.read(meta_file)
        asin = to_asin.get(str(index))
        if asin is None or not isinstance(meta, dict):
            errors.bad(meta_file, 0, f"item {index!r}: no ASIN in {map_file.name} or not an object")
            continue
        categories = [c.strip() for c in _unescape(meta.get("categories")).split(",")]
        items[asin] = Item(
            item_id=asin,
            title=_unescape(meta.get("title")),
            description=_unescape(meta.get("description")),
            brand=_unescape(meta.get("brand")) or None,
            categories=tuple(c for c in categories if c),
        )
        errors.imported(meta_file)
    return items


def _lrd_row(
    row: dict[str, str],
    index_to_asin: dict[str, str],
    items: dict[str, Item],
    heldout: bool,
) -> tuple[str, str, int, tuple[str, ...]] | str:
    """(member, ASIN, ts_ms, negative ASINs) or the reason the row is bad."""
    member, item, time = row.get("user_id", ""), row.get("item_id", ""), row.get("time", "")
    if not member or not time.isdigit():
        return f"expected user_id, item_id and a unix time in seconds, got {row}"
    asin = index_to_asin.get(item)
    if asin is None or asin not in items:
        return f"unknown item: item_id {item!r} is not in the item map"
    negatives: tuple[str, ...] = ()
    if heldout:
        try:
            ids = ast.literal_eval(row.get("neg_items") or "")
        except (ValueError, SyntaxError):
            return "neg_items: expected a list of item ids like [12, 7, ...]"
        if not isinstance(ids, list) or any(str(i) not in index_to_asin for i in ids):
            return "neg_items: not a list of known item ids"
        negatives = tuple(index_to_asin[str(i)] for i in ids)
    return member, asin, int(time) * 1000, negatives


# ---------- raw dumps ----------


def _read_dumps(directory: Path, errors: RowErrors) -> ImportedDataset:
    meta_file = _single(directory, "meta_*.json*", "a metadata file meta_<Category>.json[.gz]")
    category = re.sub(r"\.json(\.gz)?$", "", meta_file.name).removeprefix("meta_")
    items = _dump_items(meta_file, errors)
    reviews = sorted(p for p in directory.glob("*.json*") if not p.name.startswith("meta_"))
    ratings = sorted(directory.glob("*.csv"))
    if not reviews and not ratings:
        raise ImportFormatError(
            f"{directory}: no reviews (<Category>_5.json[.gz]) or ratings (<Category>.csv) file"
        )
    interactions: list[Interaction] = []
    for file in reviews:
        interactions.extend(_review_rows(file, items, errors))
    for file in ratings:
        interactions.extend(_rating_rows(file, items, errors))
    interactions.sort(key=lambda i: i.ts_ms)
    return ImportedDataset(
        name=f"amazon:{category}",
        source_format="amazon",
        items=items,
        interactions=interactions,
        report=errors.report,
    )


def _dump_items(file: Path, errors: RowErrors) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for line, record in _records(file, errors):
        asin = record.get("asin")
        if not isinstance(asin, str) or not asin:
            errors.bad(file, line, "no asin")
            continue
        items[asin] = Item(
            item_id=asin,
            title=_unescape(record.get("title")),
            description=_unescape(record.get("description")),
            brand=_unescape(record.get("brand")) or None,
            categories=_categories(record),
        )
        errors.imported(file)
    return items


def _categories(record: dict[str, Any]) -> tuple[str, ...]:
    """2014: ``categories`` is a list of paths (the first is used); 2018: ``category``."""
    paths = record.get("categories")
    path = paths[0] if isinstance(paths, list) and paths and isinstance(paths[0], list) else None
    if path is None:
        category = record.get("category")
        path = category if isinstance(category, list) else []
    return tuple(_unescape(c) for c in path if isinstance(c, str) and c.strip())


def _review_rows(file: Path, items: dict[str, Item], errors: RowErrors) -> Iterator[Interaction]:
    for line, record in _records(file, errors):
        member, asin, time = (
            record.get("reviewerID"),
            record.get("asin"),
            record.get("unixReviewTime"),
        )
        if not isinstance(member, str) or not isinstance(asin, str) or not isinstance(time, int):
            errors.bad(file, line, "expected reviewerID, asin and an integer unixReviewTime")
            continue
        if asin not in items:
            errors.bad(file, line, f"unknown item: asin {asin!r} has no metadata")
            continue
        errors.imported(file)
        yield Interaction(member, asin, time * 1000)


def _rating_rows(file: Path, items: dict[str, Item], errors: RowErrors) -> Iterator[Interaction]:
    with _open(file) as handle:
        for line, fields in enumerate(csv.reader(handle), start=1):
            errors.read(file)
            if len(fields) != 4 or not fields[3].strip().isdigit():
                errors.bad(file, line, "expected user,item,rating,timestamp")
                continue
            if fields[1] not in items:
                errors.bad(file, line, f"unknown item: {fields[1]!r} has no metadata")
                continue
            errors.imported(file)
            yield Interaction(fields[0], fields[1], int(fields[3]) * 1000)


def _records(file: Path, errors: RowErrors) -> Iterator[tuple[int, dict[str, Any]]]:
    """One dict per line: JSON, else a Python literal (the 2014 metadata's format)."""
    with _open(file) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            errors.read(file)
            record: object
            try:
                record = json.loads(text)
            except ValueError:
                try:
                    record = ast.literal_eval(text)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    record = None
            if not isinstance(record, dict):
                errors.bad(file, line, "not a JSON object or Python dict")
                continue
            yield line, record


# ---------- shared helpers ----------


def _single(directory: Path, pattern: str, what: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        names = [p.name for p in found]
        raise ImportFormatError(f"{directory}: expected exactly one {what}, found {names}")
    return found[0]


def _tsv_rows(
    file: Path, errors: RowErrors, heldout: bool, columns: tuple[str, ...] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a headed TSV as dicts, with their line numbers; checks the header."""
    need = columns or (("user_id", "item_id", "time") + (("neg_items",) if heldout else ()))
    with _open(file) as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise ImportFormatError(f"{file}:1: header lacks {missing}, got {reader.fieldnames}")
        for row in reader:
            errors.read(file)
            if None in row or any(v is None for v in row.values()):
                errors.bad(file, reader.line_num, "wrong number of columns")
                continue
            yield reader.line_num, row


def _open(file: Path) -> IO[str]:
    try:
        if file.suffix == ".gz":
            return gzip.open(file, "rt", encoding="utf-8", newline="")
        return file.open(encoding="utf-8", newline="")
    except OSError as error:
        raise ImportFormatError(f"{file}: cannot be read: {error}") from None


def _unescape(value: object) -> str:
    """Text with HTML entities resolved; a list (2018 descriptions) joined by spaces."""
    if isinstance(value, list):
        value = " ".join(v for v in value if isinstance(v, str))
    return " ".join(html.unescape(value).split()) if isinstance(value, str) else ""
