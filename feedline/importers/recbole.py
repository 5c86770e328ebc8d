"""RecBole atomic files in the UniSRec layout read into an `ImportedDataset`.

A directory holds, for one dataset prefix ``X`` (``Scientific``, ``Office``, …):

- ``X.train.inter``, ``X.valid.inter``, ``X.test.inter``: tab-separated with the header
  ``user_id:token  item_id_list:token_seq  item_id:token`` (columns are matched on the name
  before the colon). Ids are indices. Train has one row per prefix of a user's sequence
  (target = the next item, the history cut to its last 50 items); valid has one row per user
  with the second-to-last item as target, test one with the last.
- ``X.item2index`` and ``X.user2index``: ``original_id  index``, no header.
- ``X.text``: header ``item_id  text``, keyed by the original item id.

Each user's whole sequence is rebuilt from the train rows (ordered by position, each row's
history checked against the items before its target), then the valid and test targets
(their histories checked too). The files carry no times, so interactions get synthetic,
order-only times: position ``p`` in the user's sequence is ``1_500_000_000_000 + p × 1 day``.
For the user with index 1 = ``A2X`` whose sequence is items 1 2 3 4 (``B01``… originally)::

    X.train.inter   1  1      2        X.valid.inter  1  1 2    3
                    1  1 2    3   →    X.test.inter   1  1 2 3  4
    → Interaction("A2X", "B01", 1_500_000_000_000), … ("A2X", "B04", 1_500_259_200_000)
      HeldOut("A2X", "valid", "B03", 1_500_172_800_000), HeldOut("A2X", "test", "B04", …)

Every held-out target is also an interaction, at its position. Ids on the way out are the
original ones; an index without a mapping is a bad row (``unknown item``/``unknown user``).
Every item in ``X.item2index`` is an item, with the title ``""`` where ``X.text`` has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from feedline.importers.dataset import (
    HeldOut,
    ImportedDataset,
    ImportFormatError,
    Interaction,
    Item,
    RowErrors,
    Stage,
)

EPOCH_MS = 1_500_000_000_000
STEP_MS = 86_400_000
"""Synthetic times: one day per position, from a fixed epoch (mid-2017)."""
INTER_COLUMNS = ("user_id", "item_id_list", "item_id")
TEXT_COLUMNS = ("item_id", "text")
MISMATCH = "history does not match the train rows"
PARTS = {
    "train.inter": "the train rows (user_id, item_id_list, item_id)",
    "valid.inter": "the valid rows (user_id, item_id_list, item_id)",
    "test.inter": "the test rows (user_id, item_id_list, item_id)",
    "item2index": "the item ids (original id, index)",
    "user2index": "the user ids (original id, index)",
    "text": "the item texts (item_id, text)",
}
"""The files of one dataset: ``X.<part>`` and what it holds."""


class _BadRow(ValueError):
    """A row that cannot be imported; the message is the reason."""


@dataclass(frozen=True)
class _Row:
    """One inter row with the original ids."""

    file: Path
    line: int
    user_id: str
    history: tuple[str, ...]
    target: str


@dataclass
class _Sequence:
    """One user's rebuilt sequence and the held-out stages it ends with."""

    items: list[str]
    heldout: list[tuple[Stage, int]]
    """``(stage, position of its target)``."""


def read_recbole(
    directory: Path, errors: RowErrors, *, dataset: str | None = None
) -> ImportedDataset:
    """Read the UniSRec atomic files of ``dataset`` (default: the one in ``directory``).

    Example::

        data = read_recbole(Path("downstream/Scientific"), RowErrors(ImportReport()))
        data.heldout[0]  # HeldOut(member_id="A1…", stage="valid", item_id="B0…", …)
    """
    prefix = dataset if dataset is not None else _single_prefix(directory)
    files = {part: directory / f"{prefix}.{part}" for part in PARTS}
    for part, path in files.items():
        if not path.is_file():
            raise ImportFormatError(f"{path}: missing; a RecBole dataset needs {PARTS[part]}")
    item_ids = _read_index(files["item2index"], "item", errors)
    user_ids = _read_index(files["user2index"], "user", errors)
    items = _read_items(files["text"], item_ids, errors)
    train = _group(_read_inter(files["train.inter"], item_ids, user_ids, errors))
    sequences = {user: _rebuild(rows, errors) for user, rows in train.items()}
    for stage in ("valid", "test"):
        for row in _read_inter(files[f"{stage}.inter"], item_ids, user_ids, errors):
            _hold_out(row, stage, sequences, errors)
    interactions = sorted(_interactions(sequences), key=lambda i: i.ts_ms)
    return ImportedDataset(
        name=f"recbole:{prefix}",
        source_format="recbole",
        items=items,
        interactions=interactions,
        heldout=list(_heldout(sequences)),
        positive_action="like",
        report=errors.report,
    )


def _single_prefix(directory: Path) -> str:
    prefixes = sorted(p.name.removesuffix(".train.inter") for p in directory.glob("*.train.inter"))
    if len(prefixes) != 1:
        found = ", ".join(prefixes) or "none"
        raise ImportFormatError(
            f"{directory}: expected one X.train.inter (found: {found}); pass dataset=X"
        )
    return prefixes[0]


def _lines(path: Path, columns: int = -1) -> Iterator[tuple[int, list[str]]]:
    """``(line number, tab-separated fields)`` per non-blank line; only ``\\n`` ends one.

    With ``columns``, the last field keeps any further tabs (free text).
    """
    with path.open(encoding="utf-8", newline="\n") as file:
        for number, line in enumerate(file, start=1):
            if text := line.rstrip("\n").rstrip("\r"):
                yield number, text.split("\t", columns - 1 if columns > 0 else -1)


def _header(path: Path, names: tuple[str, ...]) -> tuple[list[int], int]:
    """Each of ``names``' column in the header (``name:type``) and the column count."""
    with path.open(encoding="utf-8") as file:
        header = file.readline().rstrip("\r\n").split("\t")
    found = [field.split(":")[0] for field in header]
    missing = [name for name in names if name not in found]
    if missing:
        raise ImportFormatError(f"{path}: the header {header} lacks the columns {missing}")
    return [found.index(name) for name in names], len(header)


def _body(path: Path, columns: int) -> Iterator[tuple[int, list[str]]]:
    """The lines after the header."""
    lines = _lines(path, columns)
    next(lines, None)
    return lines


def _read_index(path: Path, kind: str, errors: RowErrors) -> dict[str, str]:
    """``index → original id``, in file order."""
    ids: dict[str, str] = {}
    for line, row in _lines(path):
        errors.read(path)
        if len(row) != 2 or not row[0] or not row[1]:
            errors.bad(path, line, f"wrong column count: expected original {kind} id, index")
        elif row[1] in ids:
            errors.bad(path, line, f"duplicate {kind} index: {row[1]!r}")
        else:
            ids[row[1]] = row[0]
            errors.imported(path)
    return ids


def _read_items(path: Path, item_ids: dict[str, str], errors: RowErrors) -> dict[str, Item]:
    known = set(item_ids.values())
    texts: dict[str, str] = {}
    (id_column, text_column), count = _header(path, TEXT_COLUMNS)
    for line, row in _body(path, count):
        errors.read(path)
        if len(row) != count:
            errors.bad(path, line, f"wrong column count: {len(row)}, expected item_id, text")
        elif row[id_column] not in known:
            errors.bad(path, line, f"unknown item: {row[id_column]!r} is not in item2index")
        else:
            texts[row[id_column]] = row[text_column]
            errors.imported(path)
    return {item_id: Item(item_id, texts.get(item_id, "")) for item_id in item_ids.values()}


def _read_inter(
    path: Path, item_ids: dict[str, str], user_ids: dict[str, str], errors: RowErrors
) -> Iterator[_Row]:
    columns, count = _header(path, INTER_COLUMNS)
    for line, fields in _body(path, -1):
        errors.read(path)
        if len(fields) != count:
            errors.bad(path, line, f"wrong column count: {len(fields)}, expected {count}")
            continue
        user, history, target = (fields[c] for c in columns)
        try:
            row = _Row(
                path,
                line,
                _original(user, user_ids, "user"),
                tuple(_original(i, item_ids, "item") for i in history.split()),
                _original(target, item_ids, "item"),
            )
        except _BadRow as bad:
            errors.bad(path, line, str(bad))
            continue
        yield row


def _original(index: str, ids: dict[str, str], kind: str) -> str:
    if index not in ids:
        raise _BadRow(f"unknown {kind}: index {index!r} is not in {kind}2index")
    return ids[index]


def _group(rows: Iterable[_Row]) -> dict[str, list[_Row]]:
    by_user: dict[str, list[_Row]] = {}
    for row in rows:
        by_user.setdefault(row.user_id, []).append(row)
    return by_user


def _rebuild(rows: list[_Row], errors: RowErrors) -> _Sequence:
    """A user's train sequence from their rows (UniSRec writes them latest target first).

    If one row disagrees with the others, every row of the user is bad: which one is wrong
    cannot be told, and a sequence with a hole would be a wrong one.
    """
    if len(rows[0].history) > len(rows[-1].history):
        rows = rows[::-1]
    items = [*rows[0].history, *(row.target for row in rows)]
    start = len(rows[0].history)
    if all(_follows(row.history, items, start + i) for i, row in enumerate(rows)):
        for row in rows:
            errors.imported(row.file)
        return _Sequence(items, [])
    for row in rows:
        errors.bad(row.file, row.line, "history does not match the user's other train rows")
    return _Sequence([], [])


def _follows(history: tuple[str, ...], items: list[str], end: int) -> bool:
    """Whether ``history`` is what ``items`` holds before ``end``, or its last N (UniSRec cuts
    histories to 50)."""
    if not history:
        return end == 0
    start = end - len(history)
    return start >= 0 and all(items[start + i] == item for i, item in enumerate(history))


def _hold_out(row: _Row, stage: Stage, sequences: dict[str, _Sequence], errors: RowErrors) -> None:
    """Append a valid or test target to the user's sequence, if its history matches."""
    sequence = sequences.get(row.user_id)
    if sequence is None or not sequence.items:
        errors.bad(row.file, row.line, f"{MISMATCH}: the user has no (good) train rows")
    elif any(held == stage for held, _ in sequence.heldout):
        errors.bad(row.file, row.line, f"duplicate {stage} row for the user")
    elif not _follows(row.history, sequence.items, len(sequence.items)):
        errors.bad(row.file, row.line, MISMATCH)
    else:
        sequence.heldout.append((stage, len(sequence.items)))
        sequence.items.append(row.target)
        errors.imported(row.file)


def _ts_ms(position: int) -> int:
    return EPOCH_MS + position * STEP_MS


def _interactions(sequences: dict[str, _Sequence]) -> Iterator[Interaction]:
    for user_id, sequence in sequences.items():
        for position, item_id in enumerate(sequence.items):
            yield Interaction(user_id, item_id, _ts_ms(position))


def _heldout(sequences: dict[str, _Sequence]) -> Iterator[HeldOut]:
    for user_id, sequence in sequences.items():
        for stage, position in sequence.heldout:
            yield HeldOut(user_id, stage, sequence.items[position], _ts_ms(position))
