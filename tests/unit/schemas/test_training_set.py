"""``schemas.training_set``: the rules that make the tables, the round trip, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedline.world import POSITIVE_ACTIONS as WORLD_POSITIVE_ACTIONS
from processors.training_rows import (
    POSITIVE_ACTIONS,
    BuildSpec,
    EngagementRow,
    PostInfo,
    assemble_training_set,
    split_time,
)
from schemas import SchemaError
from schemas.training_set import (
    EXAMPLES_SCHEMA,
    MANIFEST_FILE,
    TABLES,
    TrainingSet,
    TrainingSetError,
    conform,
    read_training_set,
    write_training_set,
)

T0 = 1_700_000_000_000
SPLIT = T0 + 100
LOG = [  # member, post, action, offset from T0; sorted by time
    ("m1", "p1", "impression", 0),
    ("m1", "p1", "like", 5),
    ("m1", "p1", "comment", 6),  # the same pair again: still one example
    ("m1", "p2", "impression", 10),
    ("m1", "p3", "impression", 40),
    ("m1", "p4", "impression", 50),
    ("m2", "p1", "impression", 55),
    ("m2", "p1", "skip", 56),
    ("m1", "p5", "impression", 60),
    ("m1", "p5", "share", 70),
    ("m1", "p4", "click", 80),
    ("m1", "p6", "impression", 95),
    ("m1", "p6", "like", 101),  # shown before the split, liked after it: an eval target
    ("m1", "p3", "long_dwell", 120),  # positive in eval: never a hard negative
    ("m2", "p2", "impression", 130),
    ("m2", "p2", "like", 140),
]


def rows() -> list[EngagementRow]:
    return [EngagementRow(m, p, a, T0 + dt) for m, p, a, dt in LOG]


def posts() -> list[PostInfo]:
    return [PostInfo(f"p{i}", f"a{i % 2}", T0 - i) for i in range(1, 8)] + [
        PostInfo("p8", None, None)
    ]


def member_prompt(member: str, ts: int, target: str | None) -> str | None:
    return None if member == "m9" else f"{member}@{ts - T0}"


def post_prompt(post: str, at: int) -> str | None:
    return None if post == "p8" else f"{post}@{at - T0}"


def spec(**overrides: object) -> BuildSpec:
    fields: dict[str, object] = {
        "split_ms": SPLIT,
        "holdout_fraction": 0.2,
        "source": "test",
        "max_hard_negatives": 2,
    }
    return BuildSpec(**{**fields, **overrides})  # type: ignore[arg-type]


def built(**overrides: object) -> TrainingSet:
    return assemble_training_set(rows(), posts(), member_prompt, post_prompt, spec(**overrides))


def test_positive_actions_are_the_worlds() -> None:
    assert POSITIVE_ACTIONS == WORLD_POSITIVE_ACTIONS


def test_examples_are_first_positives_of_the_train_period_with_nearest_hard_negatives() -> None:
    examples = built().examples.to_pylist()
    assert [(e["member_id"], e["post_id"], e["ts_ms"] - T0) for e in examples] == [
        ("m1", "p1", 5),
        ("m1", "p5", 70),
    ]
    first, second = examples
    assert (first["member_prompt"], first["post_prompt"]) == ("m1@5", "p1@5")
    # p3 becomes positive in the eval period and p6 too: neither is ever a hard negative
    assert first["hard_negative_ids"] == ["p2", "p4"]
    assert first["hard_negative_prompts"] == ["p2@5", "p4@5"]
    assert second["hard_negative_ids"] == ["p4", "p2"]  # nearest to 70 first; max 2


def test_eval_rows_hold_targets_after_the_split() -> None:
    assert built().eval.to_pylist() == [
        {
            "member_id": "m1",
            "member_prompt": f"m1@{SPLIT - T0}",
            "relevant_post_ids": ["p6", "p3"],
            "seen_before_split": ["p1", "p2", "p4", "p5"],  # targets p3, p6 left out
        },
        {
            "member_id": "m2",
            "member_prompt": f"m2@{SPLIT - T0}",
            "relevant_post_ids": ["p2"],
            "seen_before_split": ["p1"],
        },
    ]


def test_posts_seen_and_positives() -> None:
    training_set = built()
    posts_rows = {r["post_id"]: r for r in training_set.posts.to_pylist()}
    assert "p8" not in posts_rows  # no prompt
    assert posts_rows["p1"] == {
        "post_id": "p1",
        "post_prompt": f"p1@{SPLIT - 1 - T0}",
        "author_id": "a1",
        "created_at_ms": T0 - 1,
        "popularity": 3,  # like, comment, skip before the split; impressions do not count
    }
    assert posts_rows["p3"]["popularity"] == 0  # its long dwell is after the split
    assert posts_rows["p4"]["popularity"] == 1
    impressed = {(m, p) for m, p, a, _ in LOG if a == "impression"}
    assert {(r["member_id"], r["post_id"]) for r in training_set.seen.to_pylist()} == impressed
    positives = {
        (r["member_id"], r["post_id"]): r["first_ts_ms"] - T0
        for r in training_set.positives.to_pylist()
    }
    expected = {("m1", "p1"): 5, ("m1", "p5"): 70, ("m1", "p6"): 101, ("m1", "p3"): 120}
    assert positives == {**expected, ("m2", "p2"): 140}
    counts = training_set.manifest.counts
    assert counts["posts_without_prompt"] == 1 and counts["engagements"] == len(LOG)
    assert (counts["examples"], counts["eval"], counts["posts"]) == (2, 2, 7)


def test_rows_without_prompts_are_skipped_and_counted() -> None:
    log = [EngagementRow("m9", "p1", "like", T0), EngagementRow("m1", "p8", "like", T0 + 1)]
    log += [EngagementRow("m9", "p2", "like", T0 + 200)]
    training_set = assemble_training_set(log, posts(), member_prompt, post_prompt, spec())
    assert training_set.examples.num_rows == 0 and training_set.eval.num_rows == 0
    assert training_set.manifest.counts["examples_skipped"] == 2
    assert training_set.manifest.counts["eval_skipped"] == 1


def test_split_time() -> None:
    assert split_time([T0, T0 + 1000, T0 + 500], 0.2) == T0 + 800
    assert split_time([T0, T0 + 1000], 0.0) == T0 + 1001
    with pytest.raises(TrainingSetError, match="no engagements"):
        split_time([], 0.2)
    with pytest.raises(TrainingSetError, match="holdout_fraction"):
        split_time([T0], 1.0)


def test_round_trip(tmp_path: Path) -> None:
    training_set = built()
    write_training_set(tmp_path / "set", training_set)
    back = read_training_set(tmp_path / "set")
    for name, schema in TABLES.items():
        table = getattr(back, name)
        assert table.schema.equals(schema) and table.equals(getattr(training_set, name)), name
    assert back.manifest == training_set.manifest
    files = sorted(p.name for p in (tmp_path / "set").iterdir())
    assert files == sorted([MANIFEST_FILE, *(f"{name}.parquet" for name in TABLES)])


def test_rewriting_replaces_every_file(tmp_path: Path) -> None:
    write_training_set(tmp_path, built())
    smaller = built(max_hard_negatives=1)
    write_training_set(tmp_path, smaller)
    back = read_training_set(tmp_path)
    assert back.manifest.max_hard_negatives == 1
    assert back.examples.equals(smaller.examples)


def test_a_directory_without_manifest_is_incomplete(tmp_path: Path) -> None:
    write_training_set(tmp_path, built())
    (tmp_path / MANIFEST_FILE).unlink()
    with pytest.raises(TrainingSetError, match=r"no manifest\.json"):
        read_training_set(tmp_path)
    with pytest.raises(SchemaError, match=r"no manifest\.json"):
        read_training_set(tmp_path / "missing")


def test_tables_of_another_write_are_refused(tmp_path: Path) -> None:
    write_training_set(tmp_path / "a", built())
    write_training_set(tmp_path / "b", built(split_ms=SPLIT + 100))
    (tmp_path / "b" / "eval.parquet").replace(tmp_path / "a" / "eval.parquet")
    with pytest.raises(TrainingSetError, match="manifest counts differ"):
        read_training_set(tmp_path / "a")


def test_bad_manifest_and_bad_parquet(tmp_path: Path) -> None:
    write_training_set(tmp_path, built())
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**manifest, "history": "some"}))
    with pytest.raises(TrainingSetError, match="not a valid training-set manifest"):
        read_training_set(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    (tmp_path / "seen.parquet").write_bytes(b"not parquet")
    with pytest.raises(TrainingSetError, match=r"seen\.parquet: not a readable Parquet file"):
        read_training_set(tmp_path)


def test_missing_and_mistyped_columns_are_named(tmp_path: Path) -> None:
    examples = built().examples
    broken = examples.drop_columns(["post_prompt"]).set_column(
        1, "ts_ms", pa.array([str(t) for t in examples.column("ts_ms").to_pylist()])
    )
    write_training_set(tmp_path, built())
    pq.write_table(broken, tmp_path / "examples.parquet")
    with pytest.raises(TrainingSetError) as error:
        read_training_set(tmp_path)
    message = str(error.value)
    assert "missing columns ['post_prompt']" in message and "ts_ms: expected int64" in message


def test_nulls_and_unequal_hard_negative_lists_are_refused() -> None:
    examples = built().examples
    nulls = examples.set_column(0, "member_id", pa.array([None, "m1"], pa.string()))
    with pytest.raises(TrainingSetError, match="required columns hold nulls"):
        conform(nulls, "examples")
    short = examples.set_column(
        6, "hard_negative_prompts", pa.array([["x"], []], pa.list_(pa.string()))
    )
    with pytest.raises(TrainingSetError, match="differ in length"):
        conform(short, "examples")
    null_item = examples.set_column(
        5, "hard_negative_ids", pa.array([[None, "p2"], ["p4", "p2"]], pa.list_(pa.string()))
    )
    with pytest.raises(TrainingSetError, match="null items"):
        conform(null_item, "examples")


def test_compatible_types_are_conformed() -> None:
    examples = built().examples
    foreign = pa.table(
        {
            "extra": pa.array([1, 2]),
            **{name: examples.column(name) for name in examples.column_names},
            "ts_ms": pa.array(examples.column("ts_ms").to_pylist(), pa.uint64()),
            "member_id": examples.column("member_id").cast(pa.large_string()),
            "hard_negative_ids": examples.column("hard_negative_ids").cast(
                pa.large_list(pa.large_string())
            ),
        }
    )
    conformed = conform(foreign, "examples")
    assert conformed.schema.equals(EXAMPLES_SCHEMA) and conformed.equals(examples)


def test_write_refuses_inconsistent_input(tmp_path: Path) -> None:
    training_set = built()
    with pytest.raises(TrainingSetError, match="manifest counts differ"):
        write_training_set(tmp_path, training_set._replace(seen=training_set.seen.slice(0, 1)))
    assert not (tmp_path / MANIFEST_FILE).exists()


def _loo_set() -> TrainingSet:
    from processors.loo_rows import LooSpec, Step, assemble_leave_one_out
    from processors.training_rows import PostInfo

    steps = {
        "m1": [Step(f"p{i}", i) for i in range(4)],
        "m2": [Step(f"p{i}", i) for i in (3, 2, 1)],
    }
    posts = [PostInfo(f"p{i}", None, None) for i in range(4)]
    return assemble_leave_one_out(
        steps,
        posts,
        {p.post_id: f"post {p.post_id}" for p in posts},
        lambda member, history: " ".join(history) or None,
        LooSpec("toy"),
    )


def test_a_leave_one_out_set_round_trips_with_its_heldout_table(tmp_path: Path) -> None:
    loo = _loo_set()
    write_training_set(tmp_path, loo)
    assert (tmp_path / "heldout.parquet").is_file()
    read = read_training_set(tmp_path)
    assert read.manifest.split == "leave_one_out" and read.heldout is not None
    assert loo.heldout is not None
    assert read.heldout.to_pylist() == loo.heldout.to_pylist()
    assert read.table_names() == (*TABLES, "heldout")


def test_a_leave_one_out_set_without_its_heldout_table_is_refused(tmp_path: Path) -> None:
    loo = _loo_set()
    with pytest.raises(TrainingSetError, match="heldout"):
        write_training_set(tmp_path, loo._replace(heldout=None))
    write_training_set(tmp_path, loo)
    (tmp_path / "heldout.parquet").unlink()
    with pytest.raises(TrainingSetError, match=r"heldout\.parquet"):
        read_training_set(tmp_path)


def test_a_time_split_set_has_no_heldout_table(tmp_path: Path) -> None:
    write_training_set(tmp_path, built())
    assert not (tmp_path / "heldout.parquet").exists()
    assert read_training_set(tmp_path).heldout is None
