"""MIND ``news.tsv`` and ``behaviors.tsv`` into the neutral shape: clicks, non-clicks and the
time-less history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedline.importers.dataset import (
    ImportFormatError,
    ImportReport,
    Interaction,
    RowError,
    RowErrors,
)
from feedline.importers.mind import read_mind

NEWS = [
    ["N1", "lifestyle", "lifestyleroyals", "The Brands Queen Elizabeth Loves", "Shop the…"],
    ["N2", "news", "newsworld", "A title", ""],
    ["N3", "sports", "football_nfl", 'Quotes "inside"', "An abstract"],
]
T1, T2 = "11/11/2019 9:05:58 AM", "11/15/2019 8:55:22 PM"


def ms(text: str) -> int:
    return (
        int(datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=UTC).timestamp()) * 1000
    )


def news_line(row: list[str]) -> str:
    return "\t".join([*row, "https://assets.msn.com/x", "[]", '[{"Label": "X"}]']) + "\n"


def behaviors(*rows: tuple[str, str, str, str]) -> str:
    return "".join(
        f"{i}\t{user}\t{time}\t{history}\t{shown}\n"
        for i, (user, time, history, shown) in enumerate(rows, 1)
    )


def write(directory: Path, news: str, behavior_rows: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "news.tsv").write_text(news, encoding="utf-8")
    (directory / "behaviors.tsv").write_text(behavior_rows, encoding="utf-8")
    return directory


@pytest.fixture
def news() -> str:
    return "".join(news_line(row) for row in NEWS)


def test_news_become_english_articles_with_category_and_subcategory(
    tmp_path: Path, news: str
) -> None:
    data = read_mind(write(tmp_path / "MINDsmall_dev", news, ""), RowErrors(ImportReport()))
    assert data.name == "mind:MINDsmall_dev"
    assert (data.source_format, data.positive_action) == ("mind", "click")
    first = data.items["N1"]
    assert (first.title, first.description) == ("The Brands Queen Elizabeth Loves", "Shop the…")
    assert first.categories == ("lifestyle", "lifestyleroyals")
    assert (first.format, first.language, first.brand) == ("article", "en", None)
    assert data.items["N3"].title == 'Quotes "inside"'
    assert data.report.rows_imported == {"news.tsv": 3}


def test_impressions_are_clicks_and_non_clicks_at_the_row_time(tmp_path: Path, news: str) -> None:
    rows = behaviors(("U7", T2, "", "N1-0 N3-1"), ("U8", T1, "", "N2-1"))
    data = read_mind(write(tmp_path, news, rows), RowErrors(ImportReport()))
    assert data.interactions == [
        Interaction("U8", "N2", ms(T1), positive=True),
        Interaction("U7", "N1", ms(T2), positive=False),
        Interaction("U7", "N3", ms(T2), positive=True),
    ]
    assert ms(T1) == 1_573_463_158_000
    assert data.counts()["shown_not_engaged"] == 1


def test_history_is_taken_once_from_the_earliest_row_just_before_it(
    tmp_path: Path, news: str
) -> None:
    rows = behaviors(("U7", T2, "N2 N3", "N1-1"), ("U7", T1, "N2 N3", "N1-0"))
    data = read_mind(write(tmp_path, news, rows), RowErrors(ImportReport()))
    first = ms(T1)
    assert data.interactions == [
        Interaction("U7", "N2", first - 2),
        Interaction("U7", "N3", first - 1),
        Interaction("U7", "N1", first, positive=False),
        Interaction("U7", "N1", ms(T2)),
    ]
    assert data.report.rows_imported["behaviors.tsv"] == 2


def test_a_test_split_row_without_labels_stops_a_strict_import(tmp_path: Path, news: str) -> None:
    rows = behaviors(("U7", T1, "", "N1-1"), ("U8", T1, "", "N1 N2"))
    with pytest.raises(RowError, match=r"behaviors\.tsv:2: impression without a click label"):
        read_mind(write(tmp_path, news, rows), RowErrors(ImportReport()))


def test_skipping_counts_bad_rows_by_reason_and_keeps_good_ones(tmp_path: Path, news: str) -> None:
    rows = behaviors(
        ("U1", T1, "", "N1-1"),
        ("U2", "yesterday", "", "N1-1"),
        ("U3", T1, "N9", "N1-1"),
        ("U4", T1, "", "N1-2"),
        ("U5", T1, "", "N1"),
    )
    rows += "6\tU6\tonly three columns\n"
    report = ImportReport()
    data = read_mind(write(tmp_path, news + "N4\ttoo few\n", rows), RowErrors(report, skip=True))
    assert data.interactions == [Interaction("U1", "N1", ms(T1))]
    assert report.rows_read == {"news.tsv": 4, "behaviors.tsv": 6}
    assert report.rows_imported == {"news.tsv": 3, "behaviors.tsv": 1}
    assert report.rows_rejected == {
        "news.tsv: wrong column count": 1,
        "behaviors.tsv: bad time": 1,
        "behaviors.tsv: unknown item": 1,
        "behaviors.tsv: malformed impression token": 1,
        "behaviors.tsv: impression without a click label (MIND test split?)": 1,
        "behaviors.tsv: wrong column count": 1,
    }
    assert any(
        e.endswith("behaviors.tsv:3: unknown item: NewsID 'N9' is not in news.tsv")
        for e in report.errors
    )


def test_a_missing_file_names_what_is_expected(tmp_path: Path) -> None:
    (tmp_path / "news.tsv").write_text("", encoding="utf-8")
    with pytest.raises(ImportFormatError, match=r"behaviors\.tsv: missing; a MIND directory needs"):
        read_mind(tmp_path, RowErrors(ImportReport()))
