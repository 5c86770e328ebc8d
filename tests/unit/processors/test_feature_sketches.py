"""``processors.feature_sketches``: per-partition percentile sketches kept in a table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from processors.feature_sketches import ACTION_COUNTERS, PartitionSketches, PostCounts
from processors.percentiles import FEATURES

Table = dict[str, Any]


def counts_table(partition: int, views: list[int], **fixed: Any) -> Table:
    """Posts ``<partition>-<i>`` owned by ``partition``, post i having ``views[i]`` views."""
    return {
        f"{partition}-{i}": PostCounts(partition=partition, views=v, **fixed).model_dump(
            mode="json"
        )
        for i, v in enumerate(views)
    }


def change(sketches: PartitionSketches, table: Table, counts: Table, post_id: str) -> bool:
    """``note_change`` for ``post_id`` as ``counts`` holds it now."""
    return sketches.note_change(table, counts, post_id, PostCounts.model_validate(counts[post_id]))


def rebuilds(sketches: PartitionSketches, table: Table, counts: Table, n: int, p: int = 0) -> str:
    """Note n changes of post ``<p>-0``: '1' where it rebuilt, '.' where not."""
    return "".join("1" if change(sketches, table, counts, f"{p}-0") else "." for _ in range(n))


def test_post_counts_values_leave_unknown_followers_out() -> None:
    assert PostCounts(partition=3, views=5, likes=1).values() == {
        "views": 5,
        "likes": 1,
        "comments": 0,
        "shares": 0,
    }
    assert PostCounts(partition=0, followers=0).values()["followers"] == 0


def test_action_counters() -> None:
    assert ACTION_COUNTERS == {
        "impression": "views",
        "like": "likes",
        "comment": "comments",
        "share": "shares",
    }


def test_percentiles_before_any_sketch_are_100() -> None:
    sketches = PartitionSketches(k=200)
    assert sketches.percentiles({}, 0, {"views": 0, "likes": 7}) == {"views": 100, "likes": 100}


@pytest.mark.parametrize(
    ("population", "refresh_every", "period"),
    [(5, 1_000, 1), (19, 1_000, 1), (20, 1_000, 2), (100, 1_000, 10), (100, 3, 3), (250, 7, 7)],
)
def test_rebuild_is_due_after_a_tenth_of_the_population_capped(
    population: int, refresh_every: int, period: int
) -> None:
    sketches = PartitionSketches(k=200, refresh_every=refresh_every)
    table: Table = {}
    counts = counts_table(0, list(range(population)))
    assert rebuilds(sketches, table, counts, 1) == "1"  # no sketch yet: build at once
    assert table["views@0"]["n"] == population
    assert rebuilds(sketches, table, counts, 3 * period) == ("." * (period - 1) + "1") * 3


def test_sketches_are_stored_per_feature_and_partition_with_a_generation() -> None:
    sketches = PartitionSketches(k=200, refresh_every=1)
    table: Table = {}
    counts = {**counts_table(0, [1, 2, 3]), **counts_table(1, [4, 5])}
    change(sketches, table, counts, "0-0")
    assert set(table) == {f"{f}@0" for f in FEATURES}
    assert {v["generation"] for v in table.values()} == {1}
    assert set(table["views@0"]) == {"b64", "n", "generation"}
    assert table["views@0"]["n"] == 3
    change(sketches, table, counts, "0-0")
    change(sketches, table, counts, "1-0")
    assert table["likes@0"]["generation"] == 2
    assert table["likes@1"]["generation"] == 1
    assert table["views@1"]["n"] == 2


def test_followers_none_is_left_out_of_the_sketch() -> None:
    sketches = PartitionSketches(k=200, refresh_every=1)
    table: Table = {}
    counts = {
        **counts_table(0, [0, 0, 0]),
        "known-1": PostCounts(partition=0, followers=10).model_dump(),
        "known-2": PostCounts(partition=0, followers=1_000).model_dump(),
    }
    change(sketches, table, counts, "0-0")
    assert table["views@0"]["n"] == 5
    assert table["followers@0"]["n"] == 2
    assert sketches.percentiles(table, 0, {"followers": 10}) == {"followers": 50}
    assert "followers" not in sketches.percentiles(table, 0, PostCounts(partition=0).values())


def test_partitions_do_not_influence_each_other() -> None:
    sketches = PartitionSketches(k=200, refresh_every=1_000)
    table: Table = {}
    counts = counts_table(0, list(range(100)))
    change(sketches, table, counts, "0-0")
    before = sketches.percentiles(table, 0, {"views": 49})
    assert before == {"views": 50}
    counts |= counts_table(1, [10_000] * 300)
    assert rebuilds(sketches, table, counts, 1, p=1) == "1"
    assert sketches.percentiles(table, 0, {"views": 49}) == before
    assert sketches.percentiles(table, 1, {"views": 49}) == {"views": 1}
    # changes are counted per partition: 9 on partition 0, then many on partition 1 ...
    assert rebuilds(sketches, table, counts, 9, p=0) == "." * 9
    assert rebuilds(sketches, table, counts, 30, p=1) == ("." * 29 + "1")
    # ... and the 10th change on partition 0 is what makes its rebuild due
    assert rebuilds(sketches, table, counts, 1, p=0) == "1"


def test_rebuild_uses_current_counts_not_every_count_ever_seen() -> None:
    sketches = PartitionSketches(k=200, refresh_every=1)
    table: Table = {}
    counts = counts_table(0, [0, 0, 0, 0])
    change(sketches, table, counts, "0-0")
    for views in range(1, 50):  # one post climbs; the other three stay at zero
        counts["0-0"]["views"] = views
        change(sketches, table, counts, "0-0")
    assert table["views@0"]["n"] == 4
    assert sketches.percentiles(table, 0, {"views": 0}) == {"views": 75}


def test_a_new_instance_over_the_same_table_answers_the_same() -> None:
    first = PartitionSketches(k=200, refresh_every=1)
    table: Table = {}
    counts = counts_table(0, [i * i for i in range(40)], likes=3, followers=7)
    change(first, table, counts, "0-0")
    restored = json.loads(json.dumps(table))  # what a changelogged table gives back
    queries = [{"views": v, "likes": 3, "followers": 7} for v in (0, 5, 100, 400, 2_000)]
    again = PartitionSketches(k=200)
    assert [again.percentiles(restored, 0, q) for q in queries] == [
        first.percentiles(table, 0, q) for q in queries
    ]


def test_a_rebuild_by_another_instance_is_seen_through_the_generation() -> None:
    reader, writer = PartitionSketches(k=200), PartitionSketches(k=200, refresh_every=1)
    table: Table = {}
    counts = counts_table(0, [0, 0, 10, 10])
    change(writer, table, counts, "0-0")
    assert reader.percentiles(table, 0, {"views": 0}) == {"views": 50}  # cached now
    counts |= counts_table(0, [0, 0, 0, 0])  # the same posts, all back to zero views
    writer.forget()  # changed elsewhere (as after a rebalance): read the table again
    change(writer, table, counts, "0-0")
    assert reader.percentiles(table, 0, {"views": 0}) == {"views": 100}


class CountingTable(dict[str, Any]):
    """A dict that counts how often all of it is read."""

    scans = 0

    def items(self) -> Any:
        self.scans += 1
        return super().items()


def test_rebuilds_read_the_table_once_then_follow_the_changes() -> None:
    sketches = PartitionSketches(k=200, refresh_every=1)
    table: Table = {}
    counts = CountingTable({**counts_table(0, [0, 0, 0, 0]), **counts_table(1, [5] * 50)})
    change(sketches, table, counts, "0-0")
    assert counts.scans == 1
    for views in (10, 20, 30):  # post 0-1 climbs; only note_change tells the mirror
        counts["0-1"] = PostCounts(partition=0, views=views).model_dump(mode="json")
        change(sketches, table, counts, "0-1")
    assert counts.scans == 1
    assert table["views@0"]["n"] == 4  # partition 1's posts stay out
    assert sketches.percentiles(table, 0, {"views": 30}) == {"views": 100}
    assert sketches.percentiles(table, 0, {"views": 0}) == {"views": 75}
    counts["0-9"] = PostCounts(partition=0, views=99).model_dump(mode="json")  # not noted
    sketches.forget()
    change(sketches, table, counts, "0-0")
    assert counts.scans == 2
    assert table["views@0"]["n"] == 5
