"""Roles start before the broker does: wait for it, with logged exponential backoff.

A role started while the broker is down (a restart of both, a cluster still coming up) waits
here instead of exiting: every attempt that fails is logged with the next delay, the delays
grow per ``KafkaSettings.backoff()`` (``FEEDLINE_KAFKA_RETRY_BACKOFF_*``), and
``FEEDLINE_KAFKA_STARTUP_WAIT_S`` bounds the whole wait (0: no limit). A role is not ready
(the service answers no requests, workers consume nothing) until this returns.

The broker can also go away again right after it answered. ``when_broker_answers`` runs a
start-up step (creating topics, reading changelog ids) after the wait and, if the step
fails while the broker is unreachable again, waits and runs it again; a step that fails
while the broker answers (a topic with the wrong partition count) still raises.

Example::

    wait_for_broker(KafkaSettings(), "embedding worker")
    when_broker_answers(kafka, "embedding worker", lambda: ensure_topics(kafka))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import KafkaException

from streams.errors import StreamsError
from streams.kafka_clients import admin_client
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
PROBE_TIMEOUT_S = 5.0
"""Longest wait for one metadata request."""


class BrokerUnreachable(StreamsError):
    """The broker did not answer within ``FEEDLINE_KAFKA_STARTUP_WAIT_S``."""


def wait_for_broker(
    kafka: KafkaSettings,
    role: str,
    *,
    probe: Callable[[], object] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Return once the cluster answers a metadata request (the number of failed attempts
    before that); raise ``BrokerUnreachable`` once ``kafka.startup_wait_s`` (if not 0) passed.
    ``probe`` replaces the metadata request (tests)."""
    probe = probe or _metadata_probe(kafka)
    started = monotonic()
    for attempt, delay in enumerate(kafka.backoff().delays(), start=1):
        try:
            probe()
        except KafkaException as error:
            waited = monotonic() - started
            if kafka.startup_wait_s and waited + delay > kafka.startup_wait_s:
                raise BrokerUnreachable(
                    f"{role}: no answer from {kafka.bootstrap_servers} for {waited:.0f} s "
                    f"({attempt} attempts; FEEDLINE_KAFKA_STARTUP_WAIT_S="
                    f"{kafka.startup_wait_s:g}): {error}"
                ) from error
            log.warning("%s: broker %s not answering (attempt %d), retrying in %.1f s: %s",
                        role, kafka.bootstrap_servers, attempt, delay, error)  # fmt: skip
            sleep(delay)
            continue
        if attempt > 1:
            log.info("%s: broker answered after %d attempts", role, attempt)
        return attempt - 1
    raise AssertionError("unreachable: Backoff.delays() is endless")


def when_broker_answers(
    kafka: KafkaSettings,
    role: str,
    step: Callable[[], T],
    *,
    probe: Callable[[], object] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Wait for the broker, then return ``step()``. If ``step`` raises a ``StreamsError`` or
    ``KafkaException`` and the broker no longer answers, wait for it again and rerun
    ``step`` (it must be safe to repeat); if the broker does answer, the error is the step's
    own and propagates. ``probe`` replaces the metadata request (tests)."""
    probe = probe or _metadata_probe(kafka)
    while True:
        wait_for_broker(kafka, role, probe=probe, sleep=sleep)
        try:
            return step()
        except (StreamsError, KafkaException) as error:
            try:
                probe()
            except KafkaException:
                log.warning("%s: broker %s went away during start-up, waiting again: %s",
                            role, kafka.bootstrap_servers, error)  # fmt: skip
                continue
            raise


def _metadata_probe(kafka: KafkaSettings) -> Callable[[], object]:
    admin = admin_client(kafka)
    return lambda: admin.list_topics(timeout=PROBE_TIMEOUT_S)
