"""``feedline export engagements`` on a real broker: a bounded, sorted, atomic Parquet export."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import streams.engagement_export as engagement_export
from feedline.export_cli import export_app
from schemas import Engagement
from schemas.engagement_table import ENGAGEMENTS_SCHEMA, read_engagements
from streams.engagement_export import ExportError, export_engagements
from streams.errors import TopicError
from streams.producer import EventProducer
from streams.settings import KafkaSettings

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


def engagement(i: int, member_id: str = "m1") -> Engagement:
    """The i-th engagement; timestamps are a permutation of i, so Kafka order is not ts order."""
    fields = {"schema_version": 1, "member_id": member_id, "post_id": f"p{i % 7}",
              "action": "click", "ts_ms": T0 + (i * 7) % 20, "device": "web" if i % 2 else None,
              "dwell_ms": i * 100 if i % 3 else None}  # fmt: skip
    return Engagement.model_validate(fields)


def publish(kafka: KafkaSettings, events: list[Engagement], bad: bool = False) -> None:
    with EventProducer(kafka) as producer:
        for event in events:
            producer.publish(event)
        if bad:
            topic = kafka.topic("engagements")
            producer.publish_raw(topic, b"p1", b"{not json")
            producer.publish_raw(topic, b"p2", engagement(0).model_dump_json().encode())  # key


def test_export_is_sorted_skips_invalid_and_ignores_records_after_the_end_offsets(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = kafka_factory()
    events = [engagement(i) for i in range(20)]
    publish(kafka, events, bad=True)
    observe = engagement_export._watermarks

    def observe_then_publish(*args: object, **kwargs: object) -> dict[int, tuple[int, int]]:
        watermarks = observe(*args, **kwargs)  # type: ignore[arg-type]
        publish(kafka, [engagement(i, member_id="late") for i in range(5)])
        return watermarks

    monkeypatch.setattr(engagement_export, "_watermarks", observe_then_publish)
    path = tmp_path / "out" / "engagements.parquet"
    started = time.monotonic()
    result = export_engagements(kafka, path, timeout_s=30)
    assert time.monotonic() - started < 10
    assert (result.rows, result.skipped, result.partitions) == (20, 2, 2)
    assert sum(result.end_offsets.values()) == 22
    table = read_engagements(path)
    expected = sorted(events, key=lambda e: e.ts_ms)
    assert [Engagement(schema_version=1, **row) for row in table.to_pylist()] == expected
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_an_empty_topic_writes_an_empty_file(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path
) -> None:
    path = tmp_path / "engagements.parquet"
    result = export_engagements(kafka_factory(), path)
    assert (result.rows, result.skipped, result.partitions) == (0, 0, 2)
    table = read_engagements(path)
    assert table.num_rows == 0 and table.schema.equals(ENGAGEMENTS_SCHEMA)


def test_failures_leave_the_previous_file_alone(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path
) -> None:
    path = tmp_path / "engagements.parquet"
    path.write_bytes(b"previous export")
    with pytest.raises(TopicError, match="does not exist"):
        export_engagements(kafka_factory(create=False), path)
    kafka = kafka_factory()
    publish(kafka, [engagement(0)])
    with pytest.raises(ExportError):
        export_engagements(kafka, path, timeout_s=0.001)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_cli_prints_a_json_summary(
    kafka_factory: Callable[..., KafkaSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = kafka_factory()
    publish(kafka, [engagement(i) for i in range(3)], bad=True)
    monkeypatch.setenv("FEEDLINE_KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("FEEDLINE_KAFKA_TOPIC_PREFIX", kafka.topic_prefix)
    app = typer.Typer()
    app.add_typer(export_app, name="export")  # as feedline.cli registers it
    out = tmp_path / "e.parquet"
    result = CliRunner().invoke(app, ["export", "engagements", "--out", str(out)])
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    summary = json.loads(line)
    assert summary["rows"] == 3 and summary["skipped"] == 2 and summary["path"] == str(out)
    assert summary["topic"] == kafka.topic("engagements")
    assert read_engagements(out).num_rows == 3
