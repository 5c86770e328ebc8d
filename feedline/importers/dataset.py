"""A public recommendation dataset read into one neutral shape that every importer fills.

An importer (``feedline.importers.<format>``) reads its source files into an
`ImportedDataset`; ``feedline.importers.outputs`` turns that into the wire contract (JSON
Lines for ``feedline produce``), the engagement table, and a training set. Items become posts,
users become members, and interactions become engagements:

- a positive interaction (a review, a rating at or above the threshold, a click) is an
  ``impression`` followed by the dataset's positive action at the same time;
- a shown-but-not-engaged item (MIND non-clicks, ratings below the threshold) is an
  ``impression`` alone, which the training set turns into hard negatives.

Bad rows are never dropped silently: each is a `RowError` naming the file and line. In
strict mode (the default) the first one stops the import; with ``skip_bad_rows`` every one
is counted per reason and the first few are kept for the report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from feedline.errors import FeedlineError
from schemas import MemberProfile
from schemas.events import Action, PostFormat

Stage = Literal["valid", "test"]
MAX_ERRORS_KEPT = 20


class ImportFormatError(FeedlineError):
    """A source file that cannot be imported: missing, unreadable, or with a bad row (the
    message names the file and, for a row, the line)."""


class RowError(ImportFormatError):
    """One bad row: ``file:line: reason``."""

    def __init__(self, file: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{file}:{line}: {reason}")
        self.file, self.line, self.reason = str(file), line, reason


@dataclass(frozen=True)
class Item:
    """One catalogue entry (product, movie, news article): a post on the wire."""

    item_id: str
    title: str
    description: str = ""
    brand: str | None = None
    """Maker, studio or publisher: the post's author and company."""
    categories: tuple[str, ...] = ()
    """Most general first; the last is the leaf, the first the post's industry."""
    format: PostFormat = "text"
    language: str | None = None
    created_at_ms: int | None = None
    """When the item appeared; unknown in most datasets (then: its first interaction)."""


@dataclass(frozen=True)
class Interaction:
    """One logged (member, item) event; ``positive`` ones are engagements the member chose."""

    member_id: str
    item_id: str
    ts_ms: int
    positive: bool = True
    """False: shown and not engaged (an impression without a click, a low rating)."""


@dataclass(frozen=True)
class HeldOut:
    """A held-out target that the source ships with its split (LRD dev/test, RecBole
    valid/test), with the negatives it sampled for the 99-negatives protocol, if any."""

    member_id: str
    stage: Stage
    item_id: str
    ts_ms: int
    negative_ids: tuple[str, ...] = ()


@dataclass
class ImportReport:
    """What was read, per file: rows read and imported, bad rows by reason."""

    rows_read: Counter[str] = field(default_factory=Counter)
    rows_imported: Counter[str] = field(default_factory=Counter)
    rows_rejected: Counter[str] = field(default_factory=Counter)
    """``"<file>: <reason>"`` → rows."""
    errors: list[str] = field(default_factory=list)
    """The first `MAX_ERRORS_KEPT` bad rows, ``file:line: reason``."""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "rows_read": dict(self.rows_read),
            "rows_imported": dict(self.rows_imported),
            "rows_rejected": dict(self.rows_rejected),
            "errors": list(self.errors),
        }


class RowErrors:
    """Where bad rows go: raised at once (strict), or counted and kept (``skip``)."""

    def __init__(self, report: ImportReport, skip: bool = False) -> None:
        self.report = report
        self.skip = skip

    def read(self, file: Path | str) -> None:
        """Count one row read from ``file``."""
        self.report.rows_read[Path(file).name] += 1

    def imported(self, file: Path | str) -> None:
        """Count one row of ``file`` that made it into the dataset."""
        self.report.rows_imported[Path(file).name] += 1

    def bad(self, file: Path | str, line: int, reason: str) -> None:
        """A bad row: raise `RowError` in strict mode, else count it under its reason."""
        error = RowError(file, line, reason)
        if not self.skip:
            raise error
        self.report.rows_rejected[f"{Path(file).name}: {reason.split(':')[0]}"] += 1
        if len(self.report.errors) < MAX_ERRORS_KEPT:
            self.report.errors.append(str(error))


@dataclass
class ImportedDataset:
    """A whole dataset in the neutral shape. ``interactions`` are in time order (stable: the
    source's order within one timestamp, which for day-resolution data is the only order)."""

    name: str
    """Short name for manifests and logs, e.g. ``amazon:Office``."""
    source_format: str
    """``amazon``, ``recbole``, ``movielens`` or ``mind``."""
    items: dict[str, Item]
    interactions: list[Interaction]
    profiles: dict[str, MemberProfile] = field(default_factory=dict)
    heldout: list[HeldOut] = field(default_factory=list)
    """Empty: the leave-one-out split is derived from ``interactions``."""
    positive_action: Action = "like"
    """The wire action a positive interaction becomes."""
    report: ImportReport = field(default_factory=ImportReport)

    def counts(self) -> dict[str, int]:
        """Items, members, interactions, positives, impressions-only, held-out rows."""
        positives = sum(1 for i in self.interactions if i.positive)
        return {
            "items": len(self.items),
            "members": len({i.member_id for i in self.interactions}),
            "interactions": len(self.interactions),
            "positives": positives,
            "shown_not_engaged": len(self.interactions) - positives,
            "profiles": len(self.profiles),
            "heldout": len(self.heldout),
        }
