"""Connection settings for Kafka, shared by every role (env prefix ``FEEDLINE_KAFKA_``).

Pointing feedline at an existing cluster is one setting away: set
``FEEDLINE_KAFKA_BOOTSTRAP_SERVERS`` (plus the SASL/SSL fields where the cluster needs them).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.backoff import Backoff

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """Where the cluster is, how to authenticate, and how topics are named and created."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    topic_prefix: str = Field("", description="prepended to every topic name, e.g. 'prod.'")
    partitions: int = Field(4, ge=1, description="partitions for topics feedline creates")
    replication_factor: int = Field(1, ge=1)
    retry_backoff_initial_s: float = Field(
        0.5, gt=0, description="first wait before retrying a call the broker did not answer"
    )
    retry_backoff_max_s: float = Field(
        10.0, gt=0, description="longest wait between retries (the wait doubles up to it)"
    )

    startup_wait_s: float = Field(
        0.0,
        ge=0,
        description="longest wait for the broker when a role starts, retrying with the backoff "
        "above (0: no limit)",
    )

    def backoff(self) -> Backoff:
        """The retry policy for calls that wait for the broker."""
        return Backoff(
            self.retry_backoff_initial_s,
            max(self.retry_backoff_max_s, self.retry_backoff_initial_s),
        )

    def topic(self, name: str) -> str:
        """The full topic name for a catalog name (``engagements`` → ``prod.engagements``)."""
        return f"{self.topic_prefix}{name}"

    def catalog_name(self, topic: str) -> str:
        """The catalog name of a cluster topic name (the inverse of ``topic``)."""
        return topic.removeprefix(self.topic_prefix)

    def confluent_config(self) -> dict[str, Any]:
        """librdkafka client properties for confluent-kafka producers and admin clients."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "log_level": 4,  # warnings and up; librdkafka logs every reconnect at info
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username or ""
            config["sasl.password"] = self.sasl_password_value()
        if self.ssl_cafile:
            config["ssl.ca.location"] = str(self.ssl_cafile)
        return config

    def aiokafka_config(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka consumers, producers and admin clients."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = self.sasl_password_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            config["ssl_context"] = self.ssl_context()
        return config

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting ``ssl_cafile`` (or the system store when unset)."""
        cafile = str(self.ssl_cafile) if self.ssl_cafile else None
        return ssl.create_default_context(cafile=cafile)

    def faust_broker_url(self) -> str:
        """The broker URL in Faust's ``kafka://host:port;host:port`` form."""
        return "kafka://" + ";".join(s.strip() for s in self.bootstrap_servers.split(","))

    def sasl_password_value(self) -> str:
        """The SASL password in clear, for handing to a client library (never log it)."""
        return self.sasl_password.get_secret_value() if self.sasl_password else ""


class LocalBrokerSettings(BaseSettings):
    """The single-node development broker (env prefix ``FEEDLINE_LOCAL_KAFKA_``)."""

    model_config = SettingsConfigDict(env_prefix="FEEDLINE_LOCAL_KAFKA_", extra="ignore")

    version: str = Field("4.1.1", description="Apache Kafka release fetched from Maven Central")
    cache_dir: Path = Field(Path.home() / ".cache" / "feedline" / "kafka")
    heap: str = Field("512m", description="JVM -Xmx/-Xms for the broker")
    start_timeout_s: float = Field(120.0, gt=0)
