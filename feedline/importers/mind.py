"""The Microsoft News Dataset (MIND: ``MINDsmall_train``, ``MINDlarge_dev``, …) read into an
`ImportedDataset`.

Both files are tab-separated without a header. ``news.tsv`` holds NewsID, Category,
SubCategory, Title, Abstract, URL, TitleEntities, AbstractEntities; ``behaviors.tsv`` holds
ImpressionID, UserID, Time (``11/15/2019 8:55:22 AM``, UTC), History (the space-separated
NewsIDs the user clicked before the logged period) and Impressions (``N1-1 N2-0``: shown,
and clicked ``1`` or not ``0``). The mapping::

    news.tsv       N55528  lifestyle  lifestyleroyals  The Brands Queen…  Shop the…  …
      → Item("N55528", "The Brands Queen…", "Shop the…",
             categories=("lifestyle", "lifestyleroyals"), format="article", language="en")
    behaviors.tsv  1  U13740  11/11/2019 9:05:58 AM  N55189 N42782  N55689-1 N35729-0
      → Interaction("U13740", "N55689", ts_ms=1573463158000, positive=True)    # clicked
        Interaction("U13740", "N35729", ts_ms=1573463158000, positive=False)   # not clicked

History clicks carry no time and every row of a user repeats the same pre-period history, so
it is taken once, from the user's earliest row, as positives just before that row's time in
their order: history item ``i`` of ``n`` at ``first_ms - (n - i)``. The test split's
unlabelled impressions (``N1 N2``) are bad rows, as are wrong column counts, bad times,
malformed impression tokens and NewsIDs missing from ``news.tsv``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from feedline.importers.dataset import (
    ImportedDataset,
    ImportFormatError,
    Interaction,
    Item,
    RowErrors,
)

NEWS_COLUMNS = 8
BEHAVIOR_COLUMNS = 5
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
LABELS = {"1": True, "0": False}


class _BadRow(ValueError):
    """A row that cannot be imported; the message is the reason."""


@dataclass(frozen=True)
class _Behavior:
    """One parsed behaviors row."""

    user_id: str
    ts_ms: int
    history: tuple[str, ...]
    impressions: tuple[Interaction, ...]


def read_mind(directory: Path, errors: RowErrors) -> ImportedDataset:
    """Read a MIND split directory holding ``news.tsv`` and ``behaviors.tsv``.

    Example::

        data = read_mind(Path("MINDsmall_train"), RowErrors(ImportReport(), skip=True))
        data.counts()["shown_not_engaged"]  # the non-clicks, for hard negatives
    """
    news = _required(directory, "news.tsv", "NewsID, Category, SubCategory, Title, …")
    behaviors = _required(directory, "behaviors.tsv", "ImpressionID, UserID, Time, …")
    items = _read_news(news, errors)
    impressions: list[Interaction] = []
    first: dict[str, _Behavior] = {}
    for behavior in _read_behaviors(behaviors, items, errors):
        impressions.extend(behavior.impressions)
        earliest = first.get(behavior.user_id)
        if earliest is None or behavior.ts_ms < earliest.ts_ms:
            first[behavior.user_id] = behavior
    interactions = [*_history(first.values()), *impressions]
    interactions.sort(key=lambda interaction: interaction.ts_ms)
    return ImportedDataset(
        name=f"mind:{directory.name}",
        source_format="mind",
        items=items,
        interactions=interactions,
        positive_action="click",
        report=errors.report,
    )


def _required(directory: Path, name: str, columns: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise ImportFormatError(
            f"{path}: missing; a MIND directory needs {name} (tab-separated: {columns})"
        )
    return path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for each non-blank line; only ``\\n`` ends a line."""
    with path.open(encoding="utf-8", newline="\n") as file:
        for number, line in enumerate(file, start=1):
            if text := line.rstrip("\n").rstrip("\r"):
                yield number, text


def _read_news(path: Path, errors: RowErrors) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for line, text in _lines(path):
        errors.read(path)
        row = text.split("\t")
        if len(row) != NEWS_COLUMNS:
            errors.bad(path, line, f"wrong column count: {len(row)}, expected {NEWS_COLUMNS}")
        elif not row[0] or row[0] in items:
            errors.bad(path, line, f"missing or duplicate NewsID: {row[0]!r}")
        else:
            news_id, category, subcategory, title, abstract = row[:5]
            categories = tuple(c for c in (category, subcategory) if c)
            items[news_id] = Item(
                news_id,
                title,
                description=abstract,
                categories=categories,
                format="article",
                language="en",
            )
            errors.imported(path)
    return items


def _read_behaviors(path: Path, items: dict[str, Item], errors: RowErrors) -> Iterator[_Behavior]:
    for line, text in _lines(path):
        errors.read(path)
        try:
            behavior = _behavior(text.split("\t"), items)
        except _BadRow as bad:
            errors.bad(path, line, str(bad))
            continue
        errors.imported(path)
        yield behavior


def _behavior(row: list[str], items: dict[str, Item]) -> _Behavior:
    if len(row) != BEHAVIOR_COLUMNS:
        raise _BadRow(f"wrong column count: {len(row)}, expected {BEHAVIOR_COLUMNS}")
    _impression_id, user_id, time, history_text, impressions_text = row
    if not user_id:
        raise _BadRow("missing UserID")
    ts_ms = _time_ms(time)
    history = tuple(history_text.split())
    for news_id in history:
        _known(news_id, items)
    tokens = impressions_text.split()
    if not tokens:
        raise _BadRow("no impressions")
    shown = tuple(_impression(token, user_id, ts_ms, items) for token in tokens)
    return _Behavior(user_id, ts_ms, history, shown)


def _time_ms(time: str) -> int:
    try:
        parsed = datetime.strptime(time, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise _BadRow(f"bad time: {time!r}, expected like 11/15/2019 8:55:22 AM") from None
    return int(parsed.timestamp()) * 1000


def _impression(token: str, user_id: str, ts_ms: int, items: dict[str, Item]) -> Interaction:
    news_id, dash, label = token.rpartition("-")
    if not dash:
        raise _BadRow(f"impression without a click label (MIND test split?): {token!r}")
    if label not in LABELS or not news_id:
        raise _BadRow(f"malformed impression token: {token!r}, expected like N1234-1 or N1234-0")
    return Interaction(user_id, _known(news_id, items), ts_ms, positive=LABELS[label])


def _known(news_id: str, items: dict[str, Item]) -> str:
    if news_id not in items:
        raise _BadRow(f"unknown item: NewsID {news_id!r} is not in news.tsv")
    return news_id


def _history(first_rows: Iterable[_Behavior]) -> Iterator[Interaction]:
    """Each user's history clicks, just before (and in the order of) their earliest row."""
    for row in first_rows:
        count = len(row.history)
        for i, news_id in enumerate(row.history):
            yield Interaction(row.user_id, news_id, row.ts_ms - (count - i))
