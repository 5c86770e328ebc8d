"""MovieLens CSV (ml-latest-small) and ``::`` (ml-1m) directories into the neutral shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedline.importers.dataset import (
    ImportFormatError,
    ImportReport,
    Interaction,
    RowError,
    RowErrors,
)
from feedline.importers.movielens import read_movielens

MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children
2,"American President, The (1995)",Comedy|Drama|Romance
3,Unknown Film,(no genres listed)
"""
RATINGS = """userId,movieId,rating,timestamp
1,1,4.0,964982703
1,2,3.5,964981247
2,3,5.0,964981247
2,1,0.5,964980000
"""


def write(directory: Path, files: dict[str, str], encoding: str = "utf-8") -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding=encoding)
    return directory


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write(tmp_path / "ml-latest-small", {"movies.csv": MOVIES, "ratings.csv": RATINGS})


def test_movies_become_video_items_with_their_genres(small: Path) -> None:
    data = read_movielens(small, RowErrors(ImportReport()))
    assert data.name == "movielens:ml-latest-small"
    assert (data.source_format, data.positive_action) == ("movielens", "like")
    toy, president, unknown = data.items["1"], data.items["2"], data.items["3"]
    assert toy.title == "Toy Story (1995)" and toy.format == "video"
    assert toy.categories == ("Adventure", "Animation", "Children")
    assert president.title == "American President, The (1995)"
    assert unknown.categories == () and unknown.description == ""


def test_ratings_are_interactions_in_time_order_positive_at_the_threshold(small: Path) -> None:
    data = read_movielens(small, RowErrors(ImportReport()))
    assert data.interactions == [
        Interaction("2", "1", 964980000_000, positive=False),
        Interaction("1", "2", 964981247_000, positive=False),  # ties keep file order
        Interaction("2", "3", 964981247_000, positive=True),
        Interaction("1", "1", 964982703_000, positive=True),
    ]
    lenient = read_movielens(small, RowErrors(ImportReport()), positive_threshold=3.5)
    assert sum(i.positive for i in lenient.interactions) == 3
    assert data.report.rows_read == {"movies.csv": 3, "ratings.csv": 4}
    assert data.report.rows_imported == data.report.rows_read


def test_tags_describe_items_by_frequency_then_first_appearance(small: Path) -> None:
    tags = "userId,movieId,tag,timestamp\n" + "".join(
        f"{user},1,{tag},1445714994\n"
        for user, tag in [(1, "pixar"), (2, "toys"), (3, "toys"), (4, '"fun, clever"'), (5, "x")]
    )
    write(small, {"tags.csv": tags})
    data = read_movielens(small, RowErrors(ImportReport()))
    assert data.items["1"].description == "toys, pixar, fun, clever, x"
    assert data.items["2"].description == ""
    assert len(data.interactions) == 4  # tags are not interactions


def test_a_bad_row_stops_a_strict_import_at_its_line(small: Path) -> None:
    write(small, {"ratings.csv": RATINGS + "3,99,4.0,964982703\n"})
    with pytest.raises(RowError, match=r"ratings\.csv:6: unknown item"):
        read_movielens(small, RowErrors(ImportReport()))


def test_skipping_counts_each_bad_row_by_reason_and_keeps_the_rest(small: Path) -> None:
    bad = "3,99,4.0,1\n3,1,abc,1\n3,1,5.5,1\n3,1,4.0,soon\n3,1,4.0\n3,1,4.0,10\n"
    write(small, {"ratings.csv": RATINGS + bad})
    report = ImportReport()
    data = read_movielens(small, RowErrors(report, skip=True))
    assert data.interactions[0] == Interaction("3", "1", 10_000, positive=True)
    assert report.rows_read["ratings.csv"] == 10
    assert report.rows_imported["ratings.csv"] == 5
    assert report.rows_rejected == {
        "ratings.csv: unknown item": 1,
        "ratings.csv: non-numeric rating": 1,
        "ratings.csv: rating outside 0-5": 1,
        "ratings.csv: non-numeric timestamp": 1,
        "ratings.csv: wrong column count": 1,
    }
    assert report.errors[0].endswith("ratings.csv:6: unknown item: movieId '99' is not in movies")


def test_missing_files_and_headers_are_format_errors(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match=r"no ratings\.csv"):
        read_movielens(tmp_path, RowErrors(ImportReport()))
    write(tmp_path, {"ratings.csv": RATINGS})
    with pytest.raises(ImportFormatError, match=r"movies\.csv: missing"):
        read_movielens(tmp_path, RowErrors(ImportReport()))
    write(tmp_path, {"movies.csv": "id,title,genres\n"})
    with pytest.raises(ImportFormatError, match="expected the header movieId,title,genres"):
        read_movielens(tmp_path, RowErrors(ImportReport()))


def test_ml_1m_dat_files_with_latin1_titles_and_user_profiles(tmp_path: Path) -> None:
    files = {
        "movies.dat": "1::Misérables, Les (1995)::Drama|Musical\n2::Heat (1995)::Action\n",
        "ratings.dat": "7::1::5::978300760\n7::2::2::978300000\n8::2::4::978301000\n",
        "users.dat": "7::F::25::12::55117\n8::M::1::0::02460\n9::M::99::4::1\n",
    }
    directory = write(tmp_path / "ml-1m", files, encoding="latin-1")
    report = ImportReport()
    data = read_movielens(directory, RowErrors(report, skip=True))
    assert data.items["1"].title == "Misérables, Les (1995)"
    assert data.items["1"].categories == ("Drama", "Musical")
    assert [(i.member_id, i.item_id, i.positive) for i in data.interactions] == [
        ("7", "2", False),
        ("7", "1", True),
        ("8", "2", True),
    ]
    assert data.profiles["7"].headline == "age 25-34, occupation programmer"
    assert data.profiles["7"].updated_at_ms == 978300000_000
    assert data.profiles["8"].headline == "age under 18, occupation other"
    assert report.rows_rejected == {"users.dat: unknown age or occupation code": 1}
    assert report.errors == [
        f"{directory / 'users.dat'}:3: unknown age or occupation code: '99', '4'"
    ]
