"""``streams.lag`` arithmetic and ``streams.lag_exporter``'s collector over a fake offsets
source (no broker)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample

from streams.lag import (
    NO_OFFSET,
    GroupSpec,
    GroupState,
    LagReadError,
    LagRow,
    Partition,
    counted_partitions,
    lag_rows,
    measure_group,
    row_lag_seconds,
    topic_lag_seconds,
)
from streams.lag_exporter import (
    ConsumerLagCollector,
    EmbedGroupSettings,
    LagExporterSettings,
    pipeline_groups,
)
from streams.settings import KafkaSettings

NOW_S = 1_800_000_000.0
NOW_MS = int(NOW_S * 1000)


class FakeSource:
    """An ``OffsetsSource`` over dicts; counts the rounds it was read."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {"in": 2, "other": 1}
        self.committed: dict[str, dict[Partition, int]] = {}
        self.members: dict[str, int] = {}
        self.earliest: dict[Partition, int] = {}
        self.latest: dict[Partition, int] = {("in", 0): 10, ("in", 1): 4, ("other", 0): 7}
        self.stamps: dict[Partition, dict[int, int]] = {}
        self.failing: set[str] = set()
        self.rounds = 0
        self.asked: list[dict[Partition, int]] = []

    def partition_counts(self) -> dict[str, int]:
        self.rounds += 1
        if "metadata" in self.failing:
            raise LagReadError("metadata unavailable")
        return dict(self.counts)

    def group_state(self, group: str) -> GroupState:
        if group in self.failing:
            raise LagReadError(f"describing group {group!r} failed")
        return GroupState(dict(self.committed.get(group, {})), self.members.get(group, 0))

    def watermarks(
        self, partitions: Sequence[Partition]
    ) -> tuple[dict[Partition, int], dict[Partition, int]]:
        earliest = {p: self.earliest.get(p, 0) for p in partitions}
        return earliest, {p: self.latest[p] for p in partitions}

    def timestamps(self, positions: Mapping[Partition, int]) -> dict[Partition, int]:
        self.asked.append(dict(positions))
        found = {p: self.stamps.get(p, {}).get(o) for p, o in positions.items()}
        return {p: ms for p, ms in found.items() if ms is not None}


def lag_of(rows: list[LagRow]) -> dict[Partition, int]:
    return {(r.topic, r.partition): r.lag for r in rows}


def test_lag_rows_count_from_the_committed_offset_or_the_earliest() -> None:
    latest = {("t", 0): 10, ("t", 1): 10, ("t", 2): 10, ("t", 3): 10, ("t", 4): 10}
    earliest = {("t", 0): 2, ("t", 1): 2, ("t", 2): 2, ("t", 3): 6, ("t", 4): 0}
    committed = {("t", 1): 10, ("t", 2): 12, ("t", 3): 4, ("t", 4): NO_OFFSET}
    rows = lag_rows(committed, earliest, latest)
    assert lag_of(rows) == {
        ("t", 0): 8,  # never committed: from the earliest offset
        ("t", 1): 0,  # committed at the end
        ("t", 2): 0,  # committed past the end (impossible): 0, never negative
        ("t", 3): 4,  # committed offset fell out of retention: resumes at the earliest
        ("t", 4): 10,  # librdkafka's "no offset" is never committed
    }
    assert [r.committed for r in rows] == [None, 10, 12, 4, None]
    assert [r.next_offset for r in rows] == [2, 10, 12, 6, 0]


def test_lag_rows_are_sorted_and_only_cover_partitions_with_watermarks() -> None:
    rows = lag_rows({("gone", 0): 3}, {}, {("b", 1): 1, ("a", 0): 1, ("b", 0): 1})
    assert [(r.topic, r.partition) for r in rows] == [("a", 0), ("b", 0), ("b", 1)]


def test_an_idle_group_counts_only_what_it_committed_plus_its_touched_inputs() -> None:
    spec = GroupSpec("g", ("in", "idle-input"))
    counts = {"in": 3, "idle-input": 2, "elsewhere": 2, "small": 1}
    committed = [("in", 1), ("elsewhere", 0), ("small", 5), ("deleted", 0)]
    assert counted_partitions(spec, committed, counts, active=False) == [
        ("elsewhere", 0),  # committed, though not configured
        ("in", 0),  # a configured input it committed on: all its partitions
        ("in", 1),
        ("in", 2),
    ]  # partitions of deleted topics, or past a topic's count, are left out


def test_an_active_group_counts_every_partition_of_its_inputs() -> None:
    spec = GroupSpec("g", ("in", "missing"))
    assert counted_partitions(spec, [], {"in": 2}, active=True) == [("in", 0), ("in", 1)]
    assert counted_partitions(spec, [], {"in": 2}, active=False) == []


def test_an_assigning_group_counts_its_inputs_with_no_members_and_nothing_committed() -> None:
    spec = GroupSpec("index", ("in", "missing"), assigns=True)
    counts = {"in": 2, "elsewhere": 1}
    assert counted_partitions(spec, [], counts, active=False) == [("in", 0), ("in", 1)]
    assert counted_partitions(spec, [("elsewhere", 0)], counts, active=False) == [
        ("elsewhere", 0),
        ("in", 0),
        ("in", 1),
    ]


def test_an_index_that_never_committed_lags_from_the_earliest_offset() -> None:
    source = FakeSource()
    source.earliest[("in", 0)] = 4
    source.stamps[("in", 0)] = {4: NOW_MS - 30_000}
    source.stamps[("in", 1)] = {0: NOW_MS - 90_000}
    registry, _, _ = collector_for(source, [GroupSpec("index", ("in",), assigns=True)])
    assert [lag_sample(registry, "index", "in", p) for p in (0, 1)] == [6.0, 4.0]
    assert seconds_sample(registry, "index", "in") == 90.0
    members = {"consumergroup": "index"}
    assert registry.get_sample_value("kafka_consumergroup_members", members) == 0.0


def test_topic_lag_seconds_is_the_oldest_unconsumed_record_over_partitions() -> None:
    rows = [
        LagRow("a", 0, 5, 0, 9, 4, NOW_MS - 30_000),
        LagRow("a", 1, 5, 0, 7, 2, NOW_MS - 90_000),
        LagRow("a", 2, 7, 0, 7, 0),
        LagRow("caught-up", 0, 3, 0, 3, 0),
        LagRow("unknown", 0, 0, 0, 3, 3),
        LagRow("skewed", 0, 0, 0, 3, 3, NOW_MS + 5_000),
    ]
    assert topic_lag_seconds(rows, NOW_MS) == {"a": 90.0, "caught-up": 0.0, "skewed": 0.0}
    assert [row_lag_seconds(r, NOW_MS) for r in rows] == [30.0, 90.0, 0.0, 0.0, None, 0.0]


def test_measure_group_reads_timestamps_at_the_resume_offset_of_lagging_partitions() -> None:
    source = FakeSource()
    source.committed["g"] = {("in", 0): 6, ("in", 1): 4}
    source.earliest[("in", 0)] = 1
    source.stamps[("in", 0)] = {6: NOW_MS - 1_000}
    reading = measure_group(source, GroupSpec("g", ("in",)), source.partition_counts())
    assert source.asked == [{("in", 0): 6}]  # ("in", 1) is caught up: nothing to read
    assert [r.oldest_ms for r in reading.rows] == [NOW_MS - 1_000, None]


def test_measure_group_of_an_unknown_group_reads_nothing() -> None:
    source = FakeSource()
    reading = measure_group(source, GroupSpec("nobody", ("in",)), source.partition_counts())
    assert (reading.members, reading.rows, source.asked) == (0, [], [])


def collector_for(
    source: FakeSource, groups: list[GroupSpec], cache_s: float = 5.0
) -> tuple[CollectorRegistry, ConsumerLagCollector, list[float]]:
    """A registered collector whose clocks the test moves through ``clock[0]``."""
    clock = [NOW_S]
    collector = ConsumerLagCollector(
        KafkaSettings(),
        groups,
        cache_s,
        source=source,
        clock=lambda: clock[0],
        monotonic=lambda: clock[0],
    )
    registry = CollectorRegistry()
    registry.register(collector)
    return registry, collector, clock


def lag_sample(registry: CollectorRegistry, group: str, topic: str, p: int) -> float | None:
    labels = {"consumergroup": group, "topic": topic, "partition": str(p)}
    return registry.get_sample_value("kafka_consumergroup_lag", labels)


def seconds_sample(registry: CollectorRegistry, group: str, topic: str) -> float | None:
    labels = {"consumergroup": group, "topic": topic}
    return registry.get_sample_value("kafka_consumergroup_lag_seconds", labels)


def errors_sample(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("feedline_lag_exporter_scrape_errors_total")


def broker_up_sample(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("feedline_lag_exporter_broker_up")


def test_collector_exposes_lag_seconds_members_and_errors() -> None:
    source = FakeSource()
    source.committed = {"g": {("in", 0): 7, ("other", 0): 7}, "idle": {}}
    source.members["g"] = 2
    source.stamps[("in", 0)] = {7: NOW_MS - 42_000}
    source.stamps[("in", 1)] = {0: NOW_MS - 12_000}
    registry, _, _ = collector_for(source, [GroupSpec("g", ("in",)), GroupSpec("idle", ("in",))])
    families = {f.name: f for f in registry.collect()}
    assert set(families) == {
        "kafka_consumergroup_lag",
        "kafka_consumergroup_lag_seconds",
        "kafka_consumergroup_members",
        "feedline_lag_exporter_scrape_errors",
        "feedline_lag_exporter_broker_up",
    }
    kinds = [f.type for f in families.values()]
    assert kinds == ["gauge", "gauge", "gauge", "counter", "gauge"]
    assert [s.labels for s in families["kafka_consumergroup_lag"].samples] == [
        {"consumergroup": "g", "topic": "in", "partition": "0"},
        {"consumergroup": "g", "topic": "in", "partition": "1"},
        {"consumergroup": "g", "topic": "other", "partition": "0"},
    ]
    assert [lag_sample(registry, "g", "in", p) for p in (0, 1)] == [3.0, 4.0]
    assert lag_sample(registry, "g", "other", 0) == 0.0
    assert seconds_sample(registry, "g", "in") == 42.0
    assert seconds_sample(registry, "g", "other") == 0.0
    members = "kafka_consumergroup_members"
    assert registry.get_sample_value(members, {"consumergroup": "g"}) == 2.0
    assert registry.get_sample_value(members, {"consumergroup": "idle"}) == 0.0
    assert seconds_sample(registry, "idle", "in") is None
    assert errors_sample(registry) == 0.0
    assert broker_up_sample(registry) == 1.0


def test_registering_does_not_read_the_broker() -> None:
    source = FakeSource()
    collector_for(source, [GroupSpec("g", ("in",))])
    assert source.rounds == 0


def test_readings_are_cached_and_lag_seconds_keep_growing_meanwhile() -> None:
    source = FakeSource()
    source.committed["g"] = {("in", 0): 7, ("in", 1): 4}
    source.stamps[("in", 0)] = {7: NOW_MS - 10_000}
    registry, _, clock = collector_for(source, [GroupSpec("g", ("in",))], cache_s=5.0)
    assert seconds_sample(registry, "g", "in") == 10.0
    source.committed["g"][("in", 0)] = 10  # caught up, but not read again yet
    clock[0] += 4.0
    assert lag_sample(registry, "g", "in", 0) == 3.0
    assert seconds_sample(registry, "g", "in") == 14.0
    assert source.rounds == 1
    clock[0] += 1.0
    assert lag_sample(registry, "g", "in", 0) == 0.0
    assert seconds_sample(registry, "g", "in") == 0.0
    assert source.rounds == 2


def test_series_of_partitions_no_longer_owned_disappear() -> None:
    source = FakeSource()
    source.committed["g"] = {("in", 0): 1, ("other", 0): 1}
    registry, _, _ = collector_for(source, [GroupSpec("g", ("in",))], cache_s=0)
    assert lag_sample(registry, "g", "other", 0) == 6.0
    del source.committed["g"][("other", 0)]  # its offsets expired / the topic left the group
    assert lag_sample(registry, "g", "other", 0) is None
    assert lag_sample(registry, "g", "in", 1) == 4.0
    source.committed["g"] = {}  # the group was deleted
    assert lag_sample(registry, "g", "in", 0) is None
    assert seconds_sample(registry, "g", "in") is None


def test_broker_errors_drop_the_series_and_count_instead_of_serving_old_values() -> None:
    source = FakeSource()
    source.committed = {"g": {("in", 0): 1}, "h": {("in", 0): 2}}
    registry, _, _ = collector_for(
        source, [GroupSpec("g", ("in",)), GroupSpec("h", ("in",))], cache_s=0
    )
    assert lag_sample(registry, "g", "in", 0) == 9.0
    source.failing = {"metadata"}
    assert lag_sample(registry, "g", "in", 0) is None
    assert errors_sample(registry) == 2.0  # one failed round per scrape above (cache_s=0)
    assert broker_up_sample(registry) == 0.0
    source.failing = {"g"}
    assert lag_sample(registry, "g", "in", 0) is None
    assert lag_sample(registry, "h", "in", 0) == 8.0
    assert broker_up_sample(registry) == 1.0  # the broker answers; one group's read failed
    source.failing = set()
    assert lag_sample(registry, "g", "in", 0) == 9.0


def test_every_series_is_back_on_the_first_reading_after_the_broker_answers() -> None:
    source = FakeSource()
    source.committed = {"g": {("in", 0): 1}}
    groups = [GroupSpec("g", ("in",)), GroupSpec("index", ("in",), assigns=True)]
    registry, _, clock = collector_for(source, groups, cache_s=5.0)
    before = {s.labels["consumergroup"] for s in lag_samples(registry)}
    source.failing = {"metadata"}
    clock[0] += 5.0
    assert (lag_samples(registry), broker_up_sample(registry)) == ([], 0.0)
    source.failing = set()
    clock[0] += 4.9
    assert broker_up_sample(registry) == 0.0  # the failed reading is served for cache_s
    clock[0] += 0.1
    assert {s.labels["consumergroup"] for s in lag_samples(registry)} == before == {"g", "index"}
    assert broker_up_sample(registry) == 1.0


def lag_samples(registry: CollectorRegistry) -> list[Sample]:
    families = {f.name: f for f in registry.collect()}
    return list(families["kafka_consumergroup_lag"].samples)


def test_pipeline_groups_name_the_groups_as_the_roles_do(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FEEDLINE_PROMPTS_APP_ID", "FEEDLINE_EMBED_GROUP_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FEEDLINE_INDEX_CONSUMER_GROUP", raising=False)
    groups = pipeline_groups(KafkaSettings(topic_prefix="p."))
    assert groups == [
        GroupSpec(
            "p.feedline-prompts",
            (
                "p.posts.created",
                "p.posts.deleted",
                "p.engagements",
                "p.members.profile",
                "p.engagements.by-member",
            ),
        ),
        GroupSpec("p.feedline-embed", ("p.prompts.posts", "p.prompts.members")),
        GroupSpec("feedline-index", ("p.embeddings.posts", "p.embeddings.members"), assigns=True),
    ]
    monkeypatch.setenv("FEEDLINE_EMBED_GROUP_ID", "embed-b")
    monkeypatch.setenv("FEEDLINE_INDEX_CONSUMER_GROUP", "p.index")
    groups = pipeline_groups(KafkaSettings(topic_prefix="p."))
    assert [g.group for g in groups] == ["p.feedline-prompts", "p.embed-b", "p.index"]


def test_the_embed_group_default_matches_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.embed_worker import EmbedWorkerSettings

    monkeypatch.delenv("FEEDLINE_EMBED_GROUP_ID", raising=False)
    assert EmbedGroupSettings().group_id == EmbedWorkerSettings().group_id


def test_exporter_settings_read_the_lag_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FEEDLINE_LAG_HOST", "FEEDLINE_LAG_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert (LagExporterSettings().host, LagExporterSettings().port) == ("127.0.0.1", 9103)
    monkeypatch.setenv("FEEDLINE_LAG_PORT", "9999")
    monkeypatch.setenv("FEEDLINE_LAG_CACHE_S", "1.5")
    settings = LagExporterSettings()
    assert (settings.port, settings.cache_s) == (9999, 1.5)
