"""``feedline topics describe`` on a real broker: partitions per topic, the owners of each
partition in a real consumer group, and the warning when the group outgrows its partitions."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer

from streams.kafka_clients import aiokafka_consumer
from streams.lag_exporter import pipeline_groups
from streams.local_broker import free_port
from streams.settings import KafkaSettings
from streams.topic_report import TopicsReport, describe_topics

pytestmark = pytest.mark.integration


async def join(kafka: KafkaSettings, group: str, topics: list[str]) -> AIOKafkaConsumer:
    consumer = aiokafka_consumer(kafka, *topics, group_id=group)
    await consumer.start()
    return consumer


async def settle(
    kafka: KafkaSettings, consumers: list[AIOKafkaConsumer], group: str, members: int
) -> TopicsReport:
    """Poll every consumer (so they take part in rebalances) until the group is Stable with
    ``members`` members that each know their assignment."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        await asyncio.gather(*(c.getmany(timeout_ms=200) for c in consumers))
        report = await asyncio.to_thread(describe_topics, kafka, pipeline_groups(kafka))
        owners = next(g for g in report.groups if g.group == group)
        assigned = sum(len(c.assignment()) for c in consumers)
        if owners.state == "Stable" and len(owners.members) == members and assigned == 4:
            return report
    raise AssertionError(f"group {group} did not settle with {members} members")


async def test_owners_of_a_real_group_and_the_idle_member_warning(
    kafka_factory: Callable[..., KafkaSettings],
) -> None:
    kafka = kafka_factory(partitions=2)
    group = kafka.topic("feedline-embed")
    inputs = [kafka.topic("prompts.posts"), kafka.topic("prompts.members")]
    consumers = [await join(kafka, group, inputs) for _ in range(3)]
    try:
        report = await settle(kafka, consumers, group, 3)
        assert {r.name: r.partitions for r in report.topics}["engagements"] == 2
        embed = next(g for g in report.groups if g.group == group)
        assert sorted(embed.owners) == [(t, p) for t in sorted(inputs) for p in (0, 1)]
        assert all(len(who) == 1 for who in embed.owners.values()), embed.owners
        assert embed.warnings[0].startswith(f"{group} has 3 members for 2 partitions per topic")
        assert report.warnings == list(embed.warnings)

        await consumers.pop().stop()
        report = await settle(kafka, consumers, group, 2)
        assert report.warnings == []
        embed = next(g for g in report.groups if g.group == group)
        assert all(len(who) == 1 for who in embed.owners.values()), embed.owners

        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "feedline", "topics", "describe", "--json", "--strict"],
            env={
                **os.environ,
                "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                "FEEDLINE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        shown = json.loads(cli.stdout)
        embed_json = next(g for g in shown["groups"] if g["group"] == group)
        assert len(embed_json["members"]) == 2 and shown["warnings"] == []
        assert sorted(embed_json["owners"]) == sorted(f"{t}[{p}]" for t in inputs for p in (0, 1))
    finally:
        for consumer in consumers:
            await consumer.stop()


def test_an_unreachable_broker_is_one_clear_error_and_exit_2() -> None:
    cli = subprocess.run(
        [sys.executable, "-m", "feedline", "topics", "describe", "--json"],
        env={**os.environ, "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 2, cli.stderr
    assert cli.stdout == ""  # no half report
    assert "is the broker reachable" in cli.stderr and "Traceback" not in cli.stderr
