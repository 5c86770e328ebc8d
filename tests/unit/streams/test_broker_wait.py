"""``wait_for_broker``: retries with growing, bounded delays; gives up only past its limit.
``when_broker_answers``: reruns a start-up step only when the broker went away under it."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.broker_wait import BrokerUnreachable, wait_for_broker, when_broker_answers
from streams.errors import TopicError
from streams.settings import KafkaSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int) -> tuple[list[int], object]:
    calls: list[int] = []

    def probe() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))

    return calls, probe


def kafka(**overrides: object) -> KafkaSettings:
    return KafkaSettings(retry_backoff_initial_s=0.5, retry_backoff_max_s=4.0, **overrides)


def test_waits_with_doubling_delays_capped_at_the_max(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    calls, probe = failing(6)
    with caplog.at_level(logging.WARNING, "streams.broker_wait"):
        failures = wait_for_broker(kafka(), "test role", probe=probe, sleep=clock.sleep,
                                   monotonic=lambda: clock.now)  # fmt: skip
    assert failures == 6 and len(calls) == 7
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(caplog.records) == 6
    assert "test role" in caplog.records[0].message
    assert "retrying in 0.5 s" in caplog.records[0].message


def test_an_answering_broker_costs_no_wait() -> None:
    clock = FakeClock()
    _, probe = failing(0)
    assert wait_for_broker(kafka(), "r", probe=probe, sleep=clock.sleep) == 0
    assert clock.sleeps == []


def test_gives_up_with_a_clear_error_past_the_startup_limit() -> None:
    clock = FakeClock()
    _, probe = failing(1_000)
    with pytest.raises(BrokerUnreachable, match="FEEDLINE_KAFKA_STARTUP_WAIT_S=10"):
        wait_for_broker(kafka(startup_wait_s=10), "r", probe=probe, sleep=clock.sleep,
                        monotonic=lambda: clock.now)  # fmt: skip
    assert sum(clock.sleeps) <= 10


def test_other_errors_propagate() -> None:
    def probe() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        wait_for_broker(kafka(), "r", probe=probe, sleep=lambda _: None)


def transport_failure() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))


def test_a_step_the_broker_failed_under_runs_again_once_it_answers() -> None:
    failing_probes = [0]
    steps: list[int] = []

    def probe() -> None:
        if failing_probes[0]:
            failing_probes[0] -= 1
            raise transport_failure()

    def create_topics() -> str:
        steps.append(1)
        if len(steps) == 1:
            failing_probes[0] = 2  # the broker is killed during the first attempt
            raise TopicError("creating topic 'posts.created' failed: transport failure")
        return "created"

    clock = FakeClock()
    assert when_broker_answers(kafka(), "r", create_topics, probe=probe, sleep=clock.sleep) == (
        "created"
    )
    assert len(steps) == 2 and clock.sleeps == [0.5]


def test_a_step_that_fails_while_the_broker_answers_raises() -> None:
    steps: list[int] = []

    def create_topics() -> None:
        steps.append(1)
        raise TopicError("topic 'posts.created' has 2 partitions, its group needs 4")

    with pytest.raises(TopicError, match="2 partitions"):
        when_broker_answers(kafka(), "r", create_topics, probe=lambda: None, sleep=lambda _: None)
    assert len(steps) == 1
