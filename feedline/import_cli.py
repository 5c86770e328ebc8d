"""``feedline import <format> SOURCE --out DIR``: a public recommendation dataset in.

Writes, under ``DIR``:

- ``events.jsonl``: the wire contract (posts, member profiles, engagements in time order) as
  envelopes that ``feedline produce DIR/events.jsonl`` publishes, so the dataset runs
  through the live pipeline;
- ``engagements.parquet``: the engagement table ``feedline train gr`` reads;
- ``train/``: a training set (``schemas.training_set``): leave-one-out by default (the
  literature's protocol; the source's own split where it ships one), or ``--split time``
  (the layout's time split with hard negatives from impressions, MIND's natural split).

It prints one JSON line: what was read, imported and rejected per file, and the counts.
A bad row stops the import with ``file:line: reason`` unless ``--skip-bad-rows``, which
counts each one by reason (nothing is dropped silently).

Example::

    feedline import amazon ../shared/data/amazon_office_2014 --out .feedline/office
    feedline import movielens ml-latest-small --out .feedline/ml --positive-threshold 4
    feedline import mind MINDsmall_train --out .feedline/mind --split time
    feedline import recbole Office --out .feedline/office-recbole
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NamedTuple

import typer

if TYPE_CHECKING:
    import pyarrow as pa

    from feedline.importers.dataset import ImportedDataset, RowErrors
    from processors.prompts import PromptLibrary

    Reader = Callable[[RowErrors], ImportedDataset]

import_app = typer.Typer(no_args_is_help=True, help="Import public recommendation datasets.")

Source = Annotated[Path, typer.Argument(exists=True, file_okay=False, help="dataset directory")]
Out = Annotated[Path, typer.Option("--out", file_okay=False, help="directory to write")]
SplitOption = Annotated[
    str, typer.Option("--split", help="leave-one-out (default) or time (20% hold-out)")
]
SkipBad = Annotated[
    bool, typer.Option("--skip-bad-rows", help="count bad rows and go on instead of stopping")
]
Numbers = Annotated[
    str, typer.Option(help="popularity in post prompts: percentile tokens, raw counts, none")
]
Descriptions = Annotated[
    bool, typer.Option(help="item descriptions in post prompts (titles always)")
]
Events = Annotated[bool, typer.Option(help="write events.jsonl for `feedline produce`")]
HistoryInPrompt = Annotated[
    int, typer.Option(min=0, help="newest items a member prompt lists (measured: 5 beats 10-50)")
]
SummaryChars = Annotated[int, typer.Option(min=20, help="characters of each listed item")]
LatestLine = Annotated[
    bool, typer.Option(help="name the newest item on its own line too (measured: better)")
]
REAL_DATA_HISTORY = 5
REAL_DATA_SUMMARY_CHARS = 100
REAL_DATA_LATEST_LINE = True


@import_app.callback()
def import_callback() -> None:
    """Import public recommendation datasets."""


@import_app.command("amazon")
def import_amazon(
    source: Source,
    out: Out,
    split: SplitOption = "leave-one-out",
    skip_bad_rows: SkipBad = False,
    numbers: Numbers = "percentile",
    descriptions: Descriptions = False,
    events: Events = True,
    history_in_prompt: HistoryInPrompt = REAL_DATA_HISTORY,
    summary_chars: SummaryChars = REAL_DATA_SUMMARY_CHARS,
    latest_line: LatestLine = REAL_DATA_LATEST_LINE,
) -> None:
    """Amazon reviews + metadata dumps, or the LRD/ReChorus split (train/dev/test.csv)."""
    from feedline.importers.amazon import read_amazon

    options = ImportOptions(
        split,
        skip_bad_rows,
        numbers,
        descriptions,
        events,
        history_in_prompt,
        summary_chars,
        latest_line,
    )
    _run(lambda errors: read_amazon(source, errors), out, options)


@import_app.command("recbole")
def import_recbole(
    source: Source,
    out: Out,
    dataset: Annotated[str | None, typer.Option(help="file prefix X of X.train.inter")] = None,
    split: SplitOption = "leave-one-out",
    skip_bad_rows: SkipBad = False,
    numbers: Numbers = "percentile",
    events: Events = True,
    history_in_prompt: HistoryInPrompt = REAL_DATA_HISTORY,
    summary_chars: SummaryChars = REAL_DATA_SUMMARY_CHARS,
    latest_line: LatestLine = REAL_DATA_LATEST_LINE,
) -> None:
    """RecBole / UniSRec atomic files (X.train/valid/test.inter, X.text, X.item2index)."""
    from feedline.importers.recbole import read_recbole

    options = ImportOptions(
        split, skip_bad_rows, numbers, True, events, history_in_prompt, summary_chars, latest_line
    )
    _run(lambda errors: read_recbole(source, errors, dataset=dataset), out, options)


@import_app.command("movielens")
def import_movielens(
    source: Source,
    out: Out,
    positive_threshold: Annotated[
        float, typer.Option(help="ratings at or above are positives; below: shown, not liked")
    ] = 4.0,
    split: SplitOption = "leave-one-out",
    skip_bad_rows: SkipBad = False,
    numbers: Numbers = "percentile",
    events: Events = True,
    history_in_prompt: HistoryInPrompt = REAL_DATA_HISTORY,
    summary_chars: SummaryChars = REAL_DATA_SUMMARY_CHARS,
    latest_line: LatestLine = REAL_DATA_LATEST_LINE,
) -> None:
    """MovieLens ratings.csv / movies.csv / tags.csv (or the ml-1m .dat files)."""
    from feedline.importers.movielens import read_movielens

    options = ImportOptions(
        split, skip_bad_rows, numbers, True, events, history_in_prompt, summary_chars, latest_line
    )
    threshold = positive_threshold
    _run(lambda errors: read_movielens(source, errors, positive_threshold=threshold), out, options)


@import_app.command("mind")
def import_mind(
    source: Source,
    out: Out,
    split: SplitOption = "time",
    skip_bad_rows: SkipBad = False,
    numbers: Numbers = "percentile",
    events: Events = True,
    history_in_prompt: HistoryInPrompt = REAL_DATA_HISTORY,
    summary_chars: SummaryChars = REAL_DATA_SUMMARY_CHARS,
    latest_line: LatestLine = REAL_DATA_LATEST_LINE,
) -> None:
    """MIND news.tsv + behaviors.tsv: impressions, clicks and non-clicks (hard negatives)."""
    from feedline.importers.mind import read_mind

    options = ImportOptions(
        split, skip_bad_rows, numbers, True, events, history_in_prompt, summary_chars, latest_line
    )
    _run(lambda errors: read_mind(source, errors), out, options)


class ImportOptions(NamedTuple):
    """What every ``feedline import`` command chooses besides its source."""

    split: str
    skip_bad_rows: bool
    numbers: str
    descriptions: bool
    events: bool
    history_in_prompt: int
    summary_chars: int
    latest_line: bool


def _run(read: Reader, out: Path, options: ImportOptions) -> None:
    from feedline.importers.dataset import ImportReport, RowErrors
    from feedline.importers.outputs import (
        engagement_table,
        leave_one_out_set,
        time_split_set,
        wire_events,
    )
    from schemas.training_set import write_training_set

    split, numbers = options.split, options.numbers
    if split not in ("leave-one-out", "time"):
        raise typer.BadParameter("--split is leave-one-out or time")
    if numbers not in ("percentile", "raw", "none"):
        raise typer.BadParameter("--numbers is percentile, raw or none")
    dataset = read(RowErrors(ImportReport(), skip=options.skip_bad_rows))
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    if options.events:
        written["events"] = str(_write_events(wire_events(dataset), out / "events.jsonl"))
    table_path = out / "engagements.parquet"
    _write_table(engagement_table(dataset), table_path)
    written["engagements"] = str(table_path)
    library, serve_with = real_data_library(
        options.history_in_prompt, options.summary_chars, options.latest_line
    )
    training_set = (
        leave_one_out_set(dataset, library, _numbers(numbers), options.descriptions)
        if split == "leave-one-out"
        else time_split_set(dataset, library)
    )
    write_training_set(out / "train", training_set)
    written["training_set"] = str(out / "train")
    summary = {
        "dataset": dataset.name,
        "format": dataset.source_format,
        "split": split,
        **dataset.counts(),
        "training_set": training_set.manifest.counts,
        "written": written,
        "serve_with": serve_with,
        **dataset.report.as_dict(),
    }
    sys.stdout.write(json.dumps(summary) + "\n")


def real_data_library(
    history_in_prompt: int, summary_chars: int, latest_line: bool = False
) -> tuple[PromptLibrary, dict[str, str]]:
    """The prompt library for imported data, and the prompt worker settings that render the
    same prompts live (``FEEDLINE_PROMPTS_*``): serve a model trained on the import with them."""
    from models.encoder import load_tokenizer
    from models.settings import EncoderSettings
    from processors.prompts import PromptLibrary
    from processors.token_budget import TokenMeter
    from streams.prompt_settings import PromptWorkerSettings

    settings = PromptWorkerSettings().model_copy(
        update={
            "history_in_prompt": history_in_prompt,
            "summary_chars": summary_chars,
            "latest_line": latest_line,
        }
    )
    tokenizer, _ = load_tokenizer(EncoderSettings())
    library = PromptLibrary(settings.prompt_config(), TokenMeter(tokenizer))
    serve_with = {
        "FEEDLINE_PROMPTS_HISTORY_IN_PROMPT": str(history_in_prompt),
        "FEEDLINE_PROMPTS_SUMMARY_CHARS": str(summary_chars),
        "FEEDLINE_PROMPTS_LATEST_LINE": str(latest_line).lower(),
    }
    return library, serve_with


def _numbers(value: str) -> Literal["percentile", "raw", "none"]:
    return "raw" if value == "raw" else "none" if value == "none" else "percentile"


def _write_events(events: Iterable[dict[str, object]], path: Path) -> Path:
    import os

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def _write_table(table: pa.Table, path: Path) -> None:
    import os

    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
