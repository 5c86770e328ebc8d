"""``streams.settings.KafkaSettings``: env config, topic names and client configs."""

from __future__ import annotations

import os
import ssl

import pytest
from pydantic import ValidationError

from streams.settings import KafkaSettings

PASSWORD = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FEEDLINE_KAFKA_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    kafka = KafkaSettings()
    assert kafka.bootstrap_servers == "127.0.0.1:9092"
    assert kafka.topic_prefix == ""
    assert kafka.confluent_config() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
        "log_level": 4,
    }
    assert kafka.aiokafka_config() == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
    }


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLINE_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9093")
    monkeypatch.setenv("FEEDLINE_KAFKA_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("FEEDLINE_KAFKA_PARTITIONS", "12")
    kafka = KafkaSettings()
    assert kafka.bootstrap_servers == "k1:9092,k2:9093"
    assert kafka.partitions == 12
    assert kafka.topic("engagements") == "prod.engagements"
    assert kafka.aiokafka_config()["bootstrap_servers"] == ["k1:9092", "k2:9093"]
    assert kafka.confluent_config()["bootstrap.servers"] == "k1:9092,k2:9093"
    assert kafka.faust_broker_url() == "kafka://k1:9092;k2:9093"


def test_invalid_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLINE_KAFKA_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        KafkaSettings()
    monkeypatch.setenv("FEEDLINE_KAFKA_PARTITIONS", "1")
    monkeypatch.setenv("FEEDLINE_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ValidationError, match="security_protocol"):
        KafkaSettings()


def test_topic_and_catalog_name_are_inverses() -> None:
    kafka = KafkaSettings(topic_prefix="t.")
    assert kafka.topic("posts.created") == "t.posts.created"
    assert kafka.catalog_name("t.posts.created") == "posts.created"
    assert kafka.catalog_name(kafka.topic("engagements.by-member")) == "engagements.by-member"
    assert KafkaSettings().catalog_name("posts.created") == "posts.created"


def sasl(**overrides: object) -> KafkaSettings:
    fields: dict[str, object] = {
        "bootstrap_servers": "broker:9094",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "feedline",
        "sasl_password": PASSWORD,
    }
    return KafkaSettings(**{**fields, **overrides})  # type: ignore[arg-type]


def test_sasl_confluent_config_passes_the_password() -> None:
    assert sasl().confluent_config() == {
        "bootstrap.servers": "broker:9094",
        "security.protocol": "SASL_PLAINTEXT",
        "log_level": 4,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "feedline",
        "sasl.password": PASSWORD,
    }


def test_sasl_aiokafka_config_passes_the_password() -> None:
    assert sasl().aiokafka_config() == {
        "bootstrap_servers": ["broker:9094"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "feedline",
        "sasl_plain_password": PASSWORD,
    }


def test_sasl_ssl_adds_a_tls_context() -> None:
    config = sasl(security_protocol="SASL_SSL").aiokafka_config()
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    assert config["sasl_plain_password"] == PASSWORD


def test_sasl_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLINE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("FEEDLINE_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("FEEDLINE_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("FEEDLINE_KAFKA_SASL_PASSWORD", PASSWORD)
    kafka = KafkaSettings()
    assert kafka.confluent_config()["sasl.password"] == PASSWORD
    assert kafka.sasl_password_value() == PASSWORD


def test_password_is_hidden_from_dumps_and_repr() -> None:
    kafka = sasl()
    dumped = kafka.model_dump_json()
    assert PASSWORD not in dumped
    assert '"sasl_password":"**********"' in dumped
    assert PASSWORD not in repr(kafka)
    assert PASSWORD not in str(kafka.model_dump())


def test_ssl_cafile_is_passed_to_librdkafka() -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile="/etc/ca.pem")  # type: ignore[arg-type]
    assert kafka.confluent_config()["ssl.ca.location"] == "/etc/ca.pem"


def test_no_sasl_password_gives_empty_string() -> None:
    assert KafkaSettings().sasl_password_value() == ""
