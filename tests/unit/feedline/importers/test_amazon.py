"""The Amazon importer on small generated files in both layouts (LRD split and raw dumps)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from feedline.importers.amazon import read_amazon
from feedline.importers.dataset import ImportFormatError, ImportReport, RowError, RowErrors

DAY = 86_400


def write_lrd(directory: Path, bad_train_row: str | None = None) -> Path:
    """Three users, five items; dev/test rows with three sampled negatives each."""
    directory.mkdir(parents=True, exist_ok=True)
    asins = ["B0001", "B0002", "B0003", "B0004", "B0005"]
    (directory / "Toy.item2index").write_text(
        "".join(f"{a}\t{i}\n" for i, a in enumerate(asins, start=1))
    )
    (directory / "Toy.text").write_text(
        "id\ttext\n" + "".join(f"{a}\tItem {a} Pens BrandX\n" for a in asins)
    )
    train = ["user_id\titem_id\ttime", f"1\t1\t{DAY}", f"2\t2\t{DAY}", f"1\t2\t{2 * DAY}",
             f"2\t3\t{2 * DAY}", f"3\t1\t{3 * DAY}", f"3\t4\t{3 * DAY}"]  # fmt: skip
    if bad_train_row is not None:
        train.append(bad_train_row)
    (directory / "train.csv").write_text("\n".join(train) + "\n")
    head = "user_id\titem_id\ttime\tneg_items\n"
    (directory / "dev.csv").write_text(
        head
        + f"1\t3\t{4 * DAY}\t[4, 5, 5]\n2\t4\t{4 * DAY}\t[1, 5, 1]\n3\t2\t{4 * DAY}\t[3, 5, 3]\n"
    )
    (directory / "test.csv").write_text(
        head
        + f"1\t4\t{5 * DAY}\t[5, 5, 2]\n2\t5\t{6 * DAY}\t[1, 1, 1]\n3\t5\t{6 * DAY}\t[3, 3, 3]\n"
    )
    return directory


def test_lrd_layout_keeps_the_published_split_and_negatives(tmp_path: Path) -> None:
    dataset = read_amazon(write_lrd(tmp_path / "toy"), RowErrors(ImportReport()))
    assert dataset.name == "amazon:Toy" and dataset.source_format == "amazon"
    assert dataset.counts()["interactions"] == 12 and dataset.counts()["members"] == 3
    assert set(dataset.items) == {"B0001", "B0002", "B0003", "B0004", "B0005"}
    assert dataset.items["B0001"].title == "Item B0001 Pens BrandX"
    user1 = [(i.item_id, i.ts_ms) for i in dataset.interactions if i.member_id == "1"]
    assert user1 == [("B0001", DAY * 1000), ("B0002", 2 * DAY * 1000),
                     ("B0003", 4 * DAY * 1000), ("B0004", 5 * DAY * 1000)]  # fmt: skip
    valid = {h.member_id: h for h in dataset.heldout if h.stage == "valid"}
    assert valid["2"].item_id == "B0004" and valid["2"].negative_ids == ("B0001", "B0005", "B0001")
    assert dataset.report.rows_imported["train.csv"] == 6


def test_lrd_uses_rich_metadata_when_present(tmp_path: Path) -> None:
    directory = write_lrd(tmp_path / "toy")
    (directory / "Toy.item.json").write_text(
        json.dumps(
            {
                "0": {
                    "title": "Gel Pen &amp; Case",
                    "description": "Smooth &quot;ink&quot;",
                    "brand": "Pilot",
                    "categories": "Office, Pens, Gel Pens",
                }
            }
        )
    )
    (directory / "apao_item_to_asin.tsv").write_text(
        "apao_item_idx\tasin\tlrd_item_id\n0\tB0003\t3\n"
    )
    dataset = read_amazon(directory, RowErrors(ImportReport()))
    item = dataset.items["B0003"]
    assert (item.title, item.description, item.brand) == ("Gel Pen & Case", 'Smooth "ink"', "Pilot")
    assert item.categories == ("Office", "Pens", "Gel Pens")
    assert dataset.items["B0001"].title == "Item B0001 Pens BrandX"  # falls back to .text


def test_a_bad_row_names_file_and_line_or_is_counted(tmp_path: Path) -> None:
    directory = write_lrd(tmp_path / "toy", bad_train_row=f"1\t99\t{DAY}")
    with pytest.raises(RowError, match=r"train\.csv:8: unknown item"):
        read_amazon(directory, RowErrors(ImportReport()))
    report = ImportReport()
    dataset = read_amazon(directory, RowErrors(report, skip=True))
    assert dataset.counts()["interactions"] == 12
    assert report.rows_rejected == {"train.csv: unknown item": 1}
    assert report.rows_read["train.csv"] == 7 and report.rows_imported["train.csv"] == 6
    assert report.errors and "train.csv:8" in report.errors[0]


def test_a_malformed_negative_list_is_a_bad_row(tmp_path: Path) -> None:
    directory = write_lrd(tmp_path / "toy")
    dev = directory / "dev.csv"
    dev.write_text(dev.read_text().replace("[4, 5, 5]", "[4, 5"))
    with pytest.raises(RowError, match=r"dev\.csv:2: neg_items"):
        read_amazon(directory, RowErrors(ImportReport()))


def test_raw_dumps_2014_metadata_and_gzipped_reviews(tmp_path: Path) -> None:
    directory = tmp_path / "dump"
    directory.mkdir()
    meta = [
        {"asin": "A1", "title": "Stapler", "brand": "Swingline",
         "categories": [["Office Products", "Staplers"]]},
        {"asin": "A2", "title": "Paper", "description": "White, 500 sheets"},
    ]  # fmt: skip
    (directory / "meta_Office.json").write_text("".join(repr(m) + "\n" for m in meta))
    reviews = [
        {"reviewerID": "U1", "asin": "A2", "overall": 5.0, "unixReviewTime": 2 * DAY},
        {"reviewerID": "U1", "asin": "A1", "overall": 4.0, "unixReviewTime": DAY},
        {"reviewerID": "U2", "asin": "ZZ", "overall": 4.0, "unixReviewTime": DAY},
    ]
    with gzip.open(directory / "reviews_Office_5.json.gz", "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in reviews))
    report = ImportReport()
    dataset = read_amazon(directory, RowErrors(report, skip=True))
    assert dataset.name == "amazon:Office" and dataset.heldout == []
    assert [(i.member_id, i.item_id) for i in dataset.interactions] == [("U1", "A1"), ("U1", "A2")]
    assert dataset.items["A1"].categories == ("Office Products", "Staplers")
    assert dataset.items["A2"].description == "White, 500 sheets"
    assert report.rows_rejected == {"reviews_Office_5.json.gz: unknown item": 1}


def test_a_directory_without_either_layout_says_what_it_needs(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="meta_<Category>"):
        read_amazon(tmp_path, RowErrors(ImportReport()))
