"""MovieLens ratings, movies and tags (GroupLens) read into an `ImportedDataset`.

Two layouts are read, chosen by which ratings file the directory holds:

- ``ratings.csv`` (ml-latest-small, ml-25m, ml-32m): CSV with a header, UTF-8, titles quoted
  when they hold commas. ``movies.csv`` is required, ``tags.csv`` optional.
- ``ratings.dat`` (ml-1m, ml-10m): ``::``-separated, no header, latin-1 in ml-1m (UTF-8 is
  tried first). ``movies.dat`` is required; ``tags.dat`` and ``users.dat`` are optional.

The mapping, with the dataset's ids kept as they are::

    movies.csv  1,Toy Story (1995),Adventure|Animation|Children
      → Item("1", "Toy Story (1995)", categories=("Adventure", "Animation", "Children"),
             format="video")            # "(no genres listed)" → categories=()
    ratings.csv 1,1,4.0,964982703
      → Interaction("1", "1", ts_ms=964982703000, positive=True)   # rating >= threshold
    tags.csv    2,60756,funny,1445714994
      → the item's description: its ten most frequent tags, ", "-joined (ties: first seen)
    users.dat   1::F::25::12::55117
      → MemberProfile("1", headline="age 25-34, occupation programmer")

A rating below ``positive_threshold`` is an impression the member did not engage with.
Tags are descriptions only, never interactions. Bad rows (wrong column count, a rating or
time that is not a number, a rating outside 0–5, an unknown movie) go to `RowErrors`.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import ValidationError

from feedline.importers.dataset import (
    ImportedDataset,
    ImportFormatError,
    Interaction,
    Item,
    RowErrors,
)
from schemas import MemberProfile

Rows = Iterator[tuple[int, list[str]]]
"""``(line number, fields)`` per data row; line 1 is the header where there is one."""

NO_GENRES = "(no genres listed)"
MAXTAGS = 10
AGES = {"1": "under 18", "18": "18-24", "25": "25-34", "35": "35-44"}
AGES.update({"45": "45-49", "50": "50-55", "56": "56+"})
"""ml-1m's age codes, from its README."""
OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
"""ml-1m's occupation codes 0–20, from its README."""
RATINGS = ("userId", "movieId", "rating", "timestamp")
MOVIES = ("movieId", "title", "genres")
TAGS = ("userId", "movieId", "tag", "timestamp")
USERS = ("UserID", "Gender", "Age", "Occupation", "Zip-code")


class _BadRow(ValueError):
    """A row that cannot be imported; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class _Layout:
    suffix: str
    rows: Callable[[Path, tuple[str, ...]], Rows]


def read_movielens(
    directory: Path, errors: RowErrors, *, positive_threshold: float = 4.0
) -> ImportedDataset:
    """Read a MovieLens directory (``ml-latest-small``, ``ml-25m``, ``ml-1m``, …).

    Example::

        data = read_movielens(Path("ml-latest-small"), RowErrors(ImportReport()))
        data.items["1"].title  # "Toy Story (1995)"
    """
    layout = _layout(directory)
    items = _read_movies(_required(directory, f"movies.{layout.suffix}"), layout, errors)
    tags = directory / f"tags.{layout.suffix}"
    if tags.exists():
        items = _describe(items, _read_tags(tags, layout, items, errors))
    ratings = directory / f"ratings.{layout.suffix}"
    interactions = _read_ratings(ratings, layout, items, positive_threshold, errors)
    interactions.sort(key=lambda interaction: interaction.ts_ms)
    users = directory / "users.dat"
    profiles = _read_users(users, layout, interactions, errors) if layout.suffix == "dat" else {}
    return ImportedDataset(
        name=f"movielens:{directory.name}",
        source_format="movielens",
        items=items,
        interactions=interactions,
        profiles=profiles,
        positive_action="like",
        report=errors.report,
    )


def _layout(directory: Path) -> _Layout:
    if (directory / "ratings.csv").exists():
        return _Layout("csv", _csv_rows)
    if (directory / "ratings.dat").exists():
        return _Layout("dat", _dat_rows)
    raise ImportFormatError(
        f"{directory}: no ratings.csv (ml-latest-small, ml-25m, ml-32m) or ratings.dat "
        "(ml-1m): expected a MovieLens directory with ratings and movies files"
    )


def _required(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise ImportFormatError(f"{path}: missing; a MovieLens directory needs {name}")
    return path


def _csv_rows(path: Path, header: tuple[str, ...]) -> Rows:
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        found = next(reader, None)
        if found is None or tuple(found) != header:
            raise ImportFormatError(f"{path}: expected the header {','.join(header)}, got {found}")
        line = reader.line_num + 1
        for row in reader:
            if row:  # a blank line is no row
                yield line, row
            line = reader.line_num + 1


def _dat_rows(path: Path, header: tuple[str, ...]) -> Rows:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    for line, row in enumerate(text.split("\n"), start=1):
        if row := row.rstrip("\r"):
            yield line, row.split("::")


def _rows(path: Path, layout: _Layout, header: tuple[str, ...], errors: RowErrors) -> Rows:
    """The rows with the header's column count; other rows go to ``errors``."""
    for line, row in layout.rows(path, header):
        errors.read(path)
        if len(row) == len(header):
            yield line, row
        else:
            columns = ",".join(header)
            errors.bad(path, line, f"wrong column count: {len(row)}, expected {columns}")


def _read_movies(path: Path, layout: _Layout, errors: RowErrors) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for line, (movie_id, title, genres) in _rows(path, layout, MOVIES, errors):
        if not movie_id or movie_id in items:
            errors.bad(path, line, f"missing or duplicate movieId: {movie_id!r}")
            continue
        categories = () if genres == NO_GENRES else tuple(g for g in genres.split("|") if g)
        items[movie_id] = Item(movie_id, title, categories=categories, format="video")
        errors.imported(path)
    return items


def _read_tags(
    path: Path, layout: _Layout, items: dict[str, Item], errors: RowErrors
) -> dict[str, Counter[str]]:
    tags: dict[str, Counter[str]] = defaultdict(Counter)
    for line, (_user, movie_id, tag, _ts) in _rows(path, layout, TAGS, errors):
        if movie_id not in items:
            errors.bad(path, line, f"unknown item: movieId {movie_id!r} is not in movies")
        elif not tag.strip():
            errors.bad(path, line, "empty tag")
        else:
            tags[movie_id][tag.strip()] += 1
            errors.imported(path)
    return tags


def _describe(items: dict[str, Item], tags: dict[str, Counter[str]]) -> dict[str, Item]:
    """Each tagged item with its most frequent tags as its description."""
    for movie_id, counts in tags.items():
        # most_common is a stable sort: equal counts keep the order first seen
        top = ", ".join(tag for tag, _ in counts.most_common(MAXTAGS))
        items[movie_id] = dataclasses.replace(items[movie_id], description=top)
    return items


def _read_ratings(
    path: Path, layout: _Layout, items: dict[str, Item], threshold: float, errors: RowErrors
) -> list[Interaction]:
    interactions = []
    for line, row in _rows(path, layout, RATINGS, errors):
        try:
            interactions.append(_rating(row, items, threshold))
        except _BadRow as bad:
            errors.bad(path, line, str(bad))
            continue
        errors.imported(path)
    return interactions


def _rating(row: list[str], items: dict[str, Item], threshold: float) -> Interaction:
    user_id, movie_id, rating_text, ts_text = row
    try:
        rating = float(rating_text)
    except ValueError:
        raise _BadRow(f"non-numeric rating: {rating_text!r}") from None
    if not 0.0 <= rating <= 5.0:  # also refuses NaN
        raise _BadRow(f"rating outside 0-5: {rating_text!r}")
    if not ts_text.isdecimal():
        raise _BadRow(f"non-numeric timestamp: {ts_text!r} (expected epoch seconds)")
    if not user_id:
        raise _BadRow("missing userId")
    if movie_id not in items:
        raise _BadRow(f"unknown item: movieId {movie_id!r} is not in movies")
    return Interaction(user_id, movie_id, int(ts_text) * 1000, positive=rating >= threshold)


def _read_users(
    path: Path, layout: _Layout, interactions: list[Interaction], errors: RowErrors
) -> dict[str, MemberProfile]:
    """ml-1m's demographics as profiles, dated at each member's first rating (else 0)."""
    if not path.exists():
        return {}
    first_ms: dict[str, int] = {}
    for interaction in interactions:  # in time order: the first seen is the earliest
        first_ms.setdefault(interaction.member_id, interaction.ts_ms)
    profiles = {}
    for line, row in _rows(path, layout, USERS, errors):
        try:
            profile = _profile(row, first_ms)
        except _BadRow as bad:
            errors.bad(path, line, str(bad))
            continue
        profiles[profile.member_id] = profile
        errors.imported(path)
    return profiles


def _profile(row: list[str], first_ms: dict[str, int]) -> MemberProfile:
    user_id, _gender, age, occupation, _zip_code = row
    code = int(occupation) if occupation.isdecimal() else -1
    if age not in AGES or not 0 <= code < len(OCCUPATIONS):
        raise _BadRow(f"unknown age or occupation code: {age!r}, {occupation!r}")
    headline = f"age {AGES[age]}, occupation {OCCUPATIONS[code]}"
    try:
        return MemberProfile(
            schema_version=1,
            member_id=user_id,
            updated_at_ms=first_ms.get(user_id, 0),
            headline=headline,
        )
    except ValidationError:
        raise _BadRow(f"invalid UserID: {user_id!r}") from None
