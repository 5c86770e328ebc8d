"""UniSRec atomic files into the neutral shape: sequences rebuilt from the augmented train
rows, original ids, synthetic order-only times and the shipped valid/test targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedline.importers.dataset import (
    HeldOut,
    ImportFormatError,
    ImportReport,
    Interaction,
    RowError,
    RowErrors,
)
from feedline.importers.recbole import EPOCH_MS, STEP_MS, read_recbole

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
ITEMS = {"1": "B01", "2": "B02", "3": "B03", "4": "B04", "5": "B05"}
USERS = {"1": "A2X", "2": "A3Y"}


def inter(*rows: tuple[str, ...]) -> str:
    return HEADER + "".join("\t".join(row) + "\n" for row in rows)


def unisrec_rows(user: str, sequence: list[str]) -> tuple[str, str, str]:
    """UniSRec's files for one user: train (latest target first), valid, test."""
    train = [(user, " ".join(sequence[:k]), sequence[k]) for k in range(len(sequence) - 3, 0, -1)]
    valid = (user, " ".join(sequence[:-2]), sequence[-2])
    test = (user, " ".join(sequence[:-1]), sequence[-1])
    return inter(*train), inter(valid), inter(test)


def write(directory: Path, train: str, valid: str, test: str, prefix: str = "Scientific") -> Path:
    directory.mkdir(exist_ok=True)
    files = {
        "train.inter": train,
        "valid.inter": valid,
        "test.inter": test,
        "item2index": "".join(f"{asin}\t{index}\n" for index, asin in ITEMS.items()),
        "user2index": "".join(f"{user}\t{index}\n" for index, user in USERS.items()),
        "text": "item_id:token\ttext:token_seq\nB01\tMicroscope slides\nB02\tLab\tcoat\n",
    }
    for part, text in files.items():
        (directory / f"{prefix}.{part}").write_text(text, encoding="utf-8")
    return directory


def day(position: int) -> int:
    return EPOCH_MS + position * STEP_MS


@pytest.fixture
def scientific(tmp_path: Path) -> Path:
    return write(tmp_path, *unisrec_rows("1", ["1", "2", "3", "4", "5"]))


def test_sequences_are_rebuilt_with_original_ids_and_synthetic_times(scientific: Path) -> None:
    data = read_recbole(scientific, RowErrors(ImportReport()))
    assert data.name == "recbole:Scientific"
    assert (data.source_format, data.positive_action) == ("recbole", "like")
    assert data.interactions == [
        Interaction("A2X", asin, day(p))
        for p, asin in enumerate(["B01", "B02", "B03", "B04", "B05"])
    ]
    assert data.heldout == [
        HeldOut("A2X", "valid", "B04", day(3)),
        HeldOut("A2X", "test", "B05", day(4)),
    ]


def test_every_indexed_item_is_an_item_titled_by_its_text(scientific: Path) -> None:
    data = read_recbole(scientific, RowErrors(ImportReport()))
    assert list(data.items) == ["B01", "B02", "B03", "B04", "B05"]
    assert data.items["B01"].title == "Microscope slides"
    assert data.items["B02"].title == "Lab\tcoat"  # the text keeps its tabs
    assert data.items["B03"].title == ""
    report = data.report
    assert report.rows_read["Scientific.train.inter"] == 2
    assert report.rows_imported == report.rows_read


def test_users_interleave_in_time_order_and_cut_histories_are_accepted(tmp_path: Path) -> None:
    # histories cut to their last two items, as UniSRec cuts them to 50
    train = inter(
        ("2", "4 5", "1"),
        ("1", "2 3", "4"),
        ("1", "1 2", "3"),
        ("2", "4", "5"),
        ("1", "1", "2"),
    )
    valid = inter(("1", "3 4", "5"), ("2", "5 1", "2"))
    directory = write(tmp_path, train, valid, inter(("2", "1 2", "3")))
    data = read_recbole(directory, RowErrors(ImportReport()))
    assert [(i.member_id, i.item_id, i.ts_ms) for i in data.interactions][:4] == [
        ("A3Y", "B04", day(0)),
        ("A2X", "B01", day(0)),
        ("A3Y", "B05", day(1)),
        ("A2X", "B02", day(1)),
    ]
    assert [(h.member_id, h.stage, h.item_id, h.ts_ms) for h in data.heldout] == [
        ("A3Y", "valid", "B02", day(3)),
        ("A3Y", "test", "B03", day(4)),
        ("A2X", "valid", "B05", day(4)),
    ]
    assert data.counts()["interactions"] == 10


def test_a_valid_row_that_disagrees_with_train_stops_a_strict_import(scientific: Path) -> None:
    (scientific / "Scientific.valid.inter").write_text(inter(("1", "1 2 4", "3")))
    with pytest.raises(RowError, match=r"Scientific\.valid\.inter:2: history does not match"):
        read_recbole(scientific, RowErrors(ImportReport()))


def test_skipping_counts_unknown_ids_and_keeps_the_rest(tmp_path: Path) -> None:
    train = inter(("1", "1", "2"), ("9", "1", "2"), ("2", "1", "77"), ("2", "1"))
    valid = inter(("1", "1 2", "3"), ("2", "1", "2"))
    report = ImportReport()
    data = read_recbole(write(tmp_path, train, valid, inter()), RowErrors(report, skip=True))
    assert [i.item_id for i in data.interactions] == ["B01", "B02", "B03"]
    assert data.heldout == [HeldOut("A2X", "valid", "B03", day(2))]
    assert report.rows_rejected == {
        "Scientific.train.inter: unknown user": 1,
        "Scientific.train.inter: unknown item": 1,
        "Scientific.train.inter: wrong column count": 1,
        "Scientific.valid.inter: history does not match the train rows": 1,
    }
    assert report.errors[0].endswith(
        "Scientific.train.inter:3: unknown user: index '9' is not in user2index"
    )


def test_train_rows_that_disagree_reject_the_user(tmp_path: Path) -> None:
    train = inter(("1", "1 2", "3"), ("1", "4", "2"))
    report = ImportReport()
    data = read_recbole(write(tmp_path, train, inter(), inter()), RowErrors(report, skip=True))
    assert data.interactions == []
    assert report.rows_rejected == {
        "Scientific.train.inter: history does not match the user's other train rows": 2
    }


def test_the_prefix_is_found_or_must_be_named(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match=r"expected one X\.train\.inter \(found: none\)"):
        read_recbole(tmp_path, RowErrors(ImportReport()))
    write(tmp_path, *unisrec_rows("1", ["1", "2", "3", "4"]))
    write(tmp_path, *unisrec_rows("1", ["1", "2", "3", "4"]), prefix="Office")
    with pytest.raises(ImportFormatError, match="found: Office, Scientific"):
        read_recbole(tmp_path, RowErrors(ImportReport()))
    assert (
        read_recbole(tmp_path, RowErrors(ImportReport()), dataset="Office").name == "recbole:Office"
    )


def test_a_missing_file_names_what_is_expected(scientific: Path) -> None:
    (scientific / "Scientific.user2index").unlink()
    with pytest.raises(ImportFormatError, match=r"Scientific\.user2index: missing; .* user ids"):
        read_recbole(scientific, RowErrors(ImportReport()))
