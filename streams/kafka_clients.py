"""Every Kafka client feedline builds, built here with the same safe defaults.

* Producers are idempotent with ``acks=all``: a retry after a broker restart or a lost
  response neither duplicates nor reorders records within a partition. A producer given a
  ``transactional_id`` also fences older producers with the same id (``streams.embed_txn``).
  (The prompt processor's producer is faust's, made idempotent in ``streams.faust_transport``.)
* Consumers never auto-commit (every role commits after its effects are durable) and read
  ``read_committed``: records of aborted transactions (a fenced embedding worker's) are never
  seen, and nothing past the last stable offset is.
* aiokafka clients bootstrap patiently (``patient_bootstrap``): their ``start()`` waits,
  with the logged backoff of ``KafkaSettings.backoff()``, while no bootstrap server answers,
  instead of raising. aiokafka tries each bootstrap server once and then raises
  ``KafkaConnectionError("Unable to bootstrap from ...")``; a role whose broker restarted
  between its start-up wait and a client's ``start()`` exited on it (the short soak caught a
  prompt worker so). librdkafka clients retry their bootstrap on their own.
* Admin clients and confluent-kafka clients get the connection and security settings of
  ``KafkaSettings`` and librdkafka's logging at warnings.

Example::

    producer = aiokafka_producer(kafka)                      # idempotent, acks=all
    consumer = aiokafka_consumer(kafka, "prompts.posts", group_id="feedline-embed")
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from streams.backoff import Backoff, retry
from streams.settings import KafkaSettings

PRODUCER_DEFAULTS: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "isolation_level": "read_committed",
    "auto_offset_reset": "earliest",
}
CONFLUENT_PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",  # the Java client's and aiokafka's: co-partitioned topics
    "linger.ms": 5,
    "compression.type": "lz4",
}
CONFLUENT_CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "isolation.level": "read_committed",
    "auto.offset.reset": "earliest",
}


def aiokafka_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` aiokafka producer (``transactional_id=`` for fencing) whose
    ``start()`` waits for the broker."""
    producer = AIOKafkaProducer(**{**PRODUCER_DEFAULTS, **kafka.aiokafka_config(), **overrides})
    patient_bootstrap(producer.client, kafka.backoff(), f"producer of {kafka.bootstrap_servers}")
    return producer


def aiokafka_consumer(kafka: KafkaSettings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer without auto-commit that reads only committed records and whose
    ``start()`` waits for the broker."""
    consumer = AIOKafkaConsumer(
        *topics, **{**CONSUMER_DEFAULTS, **kafka.aiokafka_config(), **overrides}
    )
    patient_bootstrap(consumer._client, kafka.backoff(), f"consumer of {kafka.bootstrap_servers}")
    return consumer


def patient_bootstrap(client: AIOKafkaClient, policy: Backoff, what: str) -> AIOKafkaClient:
    """Make ``client.bootstrap()`` retry per ``policy`` (each failure logged) while no
    bootstrap server answers, and return ``client``.

    aiokafka's ``AIOKafkaClient.bootstrap()`` makes one pass over the bootstrap servers and
    raises ``KafkaConnectionError`` if none answered; it changes no state before it succeeds,
    so calling it again is safe (kafka-python fixed the same one-shot bootstrap in its PR
    #1736; aiokafka has not). Only that error is retried: anything else still fails the
    ``start()``. The retries do not end (a role that reached this point has seen its broker;
    ``FEEDLINE_KAFKA_STARTUP_WAIT_S`` bounds only the wait before it).
    """
    bootstrap_once = client.bootstrap

    async def bootstrap() -> None:
        await retry(
            bootstrap_once,
            policy,
            f"{what}: bootstrap",
            retry_on=(KafkaConnectionError,),
        )

    client.bootstrap = bootstrap
    return client


def confluent_producer(kafka: KafkaSettings, **overrides: Any) -> Producer:
    """An idempotent ``acks=all`` confluent-kafka producer, partitioning like aiokafka."""
    return Producer({**kafka.confluent_config(), **CONFLUENT_PRODUCER_DEFAULTS, **overrides})


def confluent_consumer(kafka: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    """A confluent-kafka consumer without auto-commit that reads only committed records."""
    return Consumer(
        {**kafka.confluent_config(), **CONFLUENT_CONSUMER_DEFAULTS, "group.id": group_id,
         **overrides}
    )  # fmt: skip


def admin_client(kafka: KafkaSettings, **overrides: Any) -> AdminClient:
    """A confluent-kafka admin client for ``kafka``."""
    return AdminClient({**kafka.confluent_config(), **overrides})
