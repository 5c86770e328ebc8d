"""``feedline import amazon`` and ``feedline eval leave-one-out`` end to end on generated
files in the LRD layout: events ``feedline produce`` accepts, an engagement table, a
leave-one-out training set, and one protocol-stamped line per method."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feedline.cli import app
from schemas.engagement_table import read_engagements
from schemas.training_set import read_training_set
from streams.jsonl_input import parse_line

DAY = 86_400
TITLES = [
    "Blue gel pen fine point", "Black gel pen medium point", "Red gel pen",
    "Stapler heavy duty", "Staples box of 5000", "Staple remover",
    "Printer paper 500 sheets", "Photo paper glossy", "Laser toner black",
    "Inkjet cartridge color", "Desk lamp LED", "Office chair mesh",
]  # fmt: skip
# three themes (pens, staplers, paper/ink); members stay within one
SEQUENCES = {
    "1": [1, 2, 3, 1 + 0],
    "2": [4, 5, 6],
    "3": [7, 8, 9, 10],
    "4": [2, 3, 1],
    "5": [5, 6, 4],
    "6": [9, 10, 8, 7],
}


def write_lrd(directory: Path) -> Path:
    directory.mkdir(parents=True)
    asins = [f"B{i:04d}" for i in range(1, len(TITLES) + 1)]
    (directory / "Toy.item2index").write_text(
        "".join(f"{a}\t{i}\n" for i, a in enumerate(asins, start=1))
    )
    (directory / "Toy.text").write_text(
        "id\ttext\n" + "".join(f"{a}\t{t}\n" for a, t in zip(asins, TITLES, strict=True))
    )
    train, dev, test = ["user_id\titem_id\ttime"], [], []
    for user, items in SEQUENCES.items():
        items = list(dict.fromkeys(items)) + [11, 12][: max(0, 3 - len(set(items)))]
        *before, valid, last = items
        train += [f"{user}\t{item}\t{(t + 1) * DAY}" for t, item in enumerate(before)]
        negatives = [i for i in range(1, 13) if i not in items][:3]
        dev.append(f"{user}\t{valid}\t{20 * DAY}\t{negatives}")
        test.append(f"{user}\t{last}\t{21 * DAY}\t{negatives}")
    head = "user_id\titem_id\ttime\tneg_items"
    (directory / "train.csv").write_text("\n".join(train) + "\n")
    (directory / "dev.csv").write_text("\n".join([head, *dev]) + "\n")
    (directory / "test.csv").write_text("\n".join([head, *test]) + "\n")
    return directory


def _lines(*args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.strip().splitlines()]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    root = tmp_path_factory.mktemp("import")
    source = write_lrd(root / "toy")
    [summary] = _lines("import", "amazon", str(source), "--out", str(root / "out"))
    return root / "out", summary


def test_import_writes_events_table_and_a_leave_one_out_set(
    imported: tuple[Path, dict[str, object]],
) -> None:
    out, summary = imported
    assert summary["items"] == 12 and summary["members"] == 6
    assert summary["rows_rejected"] == {}
    events = [parse_line(line) for line in (out / "events.jsonl").read_text().splitlines()]
    topics = [type(e).__name__ for e in events]
    assert topics.count("PostCreated") == 12
    interactions = summary["interactions"]
    assert isinstance(interactions, int)
    assert topics.count("Engagement") == 2 * interactions  # impression + like each
    assert topics.index("Engagement") > max(i for i, t in enumerate(topics) if t == "PostCreated")
    table = read_engagements(out / "engagements.parquet")
    assert table.num_rows == 2 * interactions
    assert set(table.column("action").to_pylist()) == {"impression", "like"}
    training_set = read_training_set(out / "train")
    assert training_set.manifest.split == "leave_one_out"
    assert training_set.heldout is not None and training_set.heldout.num_rows == 12
    assert pq.read_table(out / "train" / "heldout.parquet").num_rows == 12


def test_eval_prints_every_method_under_both_protocols(
    imported: tuple[Path, dict[str, object]],
) -> None:
    out, _ = imported
    lines = _lines("eval", "leave-one-out", "--data", str(out / "train"))
    got = {(str(line["method"]), line["protocol"]["ranking"]): line for line in lines}  # type: ignore[index]
    methods = {"popularity", "last-item", "centroid", "prompts-untrained"}
    assert set(got) == {(m, r) for m in methods for r in ("full", "sampled")}
    full = got["centroid", "full"]["protocol"]
    assert full["members"] == 6 and "all 12 items" in full["candidates"]  # type: ignore[index]
    # the themes are textual: the text baselines find the target far better than chance
    for method in ("last-item", "centroid", "prompts-untrained"):
        assert got[method, "full"]["recall_at_50"] == 1.0
        assert float(got[method, "sampled"]["ndcg_at_10"]) > 0.3  # type: ignore[arg-type]


def test_eval_with_a_latest_weight_blends_the_prompt_methods_only(
    imported: tuple[Path, dict[str, object]],
) -> None:
    out, _ = imported
    data = str(out / "train")
    plain = _lines("eval", "leave-one-out", "--data", data, "--ranking", "full")
    lines = _lines(
        "eval", "leave-one-out", "--data", data, "--ranking", "full", "--latest-weight", "50"
    )
    got = {str(line["method"]): line for line in lines}
    assert set(got) == {"popularity", "last-item", "centroid", "prompts-untrained+latest"}
    assert got["prompts-untrained+latest"]["latest_weight"] == 50.0
    assert got["last-item"]["latest_weight"] is None
    before = {str(line["method"]): line for line in plain}
    assert before["prompts-untrained"]["latest_weight"] == 0.0
    # at a weight this large the member vector is almost the newest item's: last-item's scores
    for metric in ("hr_at_10", "ndcg_at_10", "recall_at_50"):
        assert got["prompts-untrained+latest"][metric] == pytest.approx(
            got["last-item"][metric], abs=1e-9
        )
    assert got["last-item"]["ndcg_at_10"] == before["last-item"]["ndcg_at_10"]


def test_a_bad_row_stops_the_import_with_file_and_line(tmp_path: Path) -> None:
    source = write_lrd(tmp_path / "toy")
    with (source / "train.csv").open("a") as handle:
        handle.write("1\tnot-a-number\t123\n")
    result = CliRunner().invoke(
        app, ["import", "amazon", str(source), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0
    assert "train.csv:" in str(result.exception) and "unknown item" in str(result.exception)
    lines = _lines("import", "amazon", str(source), "--out", str(tmp_path / "o"), "--skip-bad-rows")
    assert lines[0]["rows_rejected"] == {"train.csv: unknown item": 1}


def test_mind_impressions_become_hard_negatives_in_a_time_split(tmp_path: Path) -> None:
    source = tmp_path / "MINDsmall_train"
    source.mkdir()
    news = [
        f"N{i}\tnews\tworld\tHeadline number {i}\tAbstract {i}\thttps://x\t[]\t[]"
        for i in range(1, 9)
    ]
    (source / "news.tsv").write_text("\n".join(news) + "\n")
    rows = [
        ("U1", "11/11/2019 9:00:00 AM", "N1", "N2-1 N3-0 N4-0"),
        ("U2", "11/11/2019 10:00:00 AM", "", "N2-1 N5-0"),
        ("U1", "11/12/2019 9:00:00 AM", "N1", "N6-1 N7-0"),
        ("U2", "11/14/2019 9:00:00 AM", "", "N8-1 N3-0"),
        ("U1", "11/15/2019 9:00:00 AM", "N1", "N5-1 N4-0"),
    ]
    (source / "behaviors.tsv").write_text(
        "".join(f"{i}\t{u}\t{t}\t{h}\t{s}\n" for i, (u, t, h, s) in enumerate(rows, 1))
    )
    [summary] = _lines("import", "mind", str(source), "--out", str(tmp_path / "out"))
    assert summary["split"] == "time" and summary["shown_not_engaged"] == 6
    training_set = read_training_set(tmp_path / "out" / "train")
    assert training_set.manifest.split == "time"
    examples = {(r["member_id"], r["post_id"]): r for r in training_set.examples.to_pylist()}
    assert set(examples["U1", "N2"]["hard_negative_ids"]) <= {"N3", "N4", "N7"}
    assert examples["U1", "N2"]["hard_negative_ids"]  # shown, never clicked
    assert "N1" in examples["U1", "N2"]["member_prompt"] or "Headline number 1" in str(
        examples["U1", "N2"]["member_prompt"]
    )


def test_validation_scores_the_second_to_last_items_only_on_leave_one_out_sets(
    imported: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    from feedline.dual_validation import validation_for
    from models.encoder import TextEncoder
    from models.settings import EncoderSettings

    out, _ = imported
    validation = validation_for(read_training_set(out / "train"), members=4, seed=0)
    assert validation is not None and "4 members" in validation.name
    encoder = TextEncoder.load(EncoderSettings())
    score = validation.score(encoder)
    assert 0.0 < score <= 1.0  # themed items: the text model finds some validation targets
    latest = validation_for(read_training_set(out / "train"), members=4, seed=0, latest_weight=50)
    assert latest is not None and "+latest 50" in latest.name
    assert latest.score(encoder) != score  # the newest item's neighbours, not the prompt's
    time_split = tmp_path / "time"
    _lines("import", "amazon", str(out.parent / "toy"), "--out", str(time_split), "--split", "time")
    assert validation_for(read_training_set(time_split / "train"), members=4, seed=0) is None


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--stage", "later", "stage is valid or test"), ("--ranking", "top", "ranking is full"),
     ("--methods", "centroid,magic", "unknown methods"),
     ("--latest-weight", "-1", "--latest-weight")],
)  # fmt: skip
def test_eval_refuses_bad_options_before_loading_anything(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    result = CliRunner().invoke(
        app, ["eval", "leave-one-out", "--data", str(tmp_path), option, value]
    )
    assert result.exit_code == 2 and message in result.output


def test_eval_of_a_time_split_set_says_to_use_eval_retrieval(
    imported: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    out, _ = imported
    _lines("import", "amazon", str(out.parent / "toy"), "--out", str(tmp_path), "--split", "time")
    result = CliRunner().invoke(app, ["eval", "leave-one-out", "--data", str(tmp_path / "train")])
    assert result.exit_code != 0 and "eval retrieval" in str(result.exception)
