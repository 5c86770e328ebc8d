"""A real single-node Apache Kafka broker (KRaft) for development, tests and the demo.

No Docker: the broker runs from its Maven Central jars (see ``kafka_jars``) on loopback ports,
with its storage in a data directory of the caller's choosing. The first start in an empty
directory picks two free ports, writes ``server.properties`` and formats the storage with a new
cluster id; every later start in the same directory (after ``stop()``, ``kill()``, a crash, or
in another process) reuses those ports and that storage, so topics, records and committed
offsets survive a restart. Wipe the directory to start from nothing.

``start()`` returns only once the broker answers a metadata request; ``stop()`` sends SIGTERM
(a clean shutdown) and escalates to SIGKILL after a grace period; ``kill()`` is a crash.

Example::

    with LocalKafka(Path("/tmp/kafka-dev")) as kafka:
        print(kafka.bootstrap_servers)   # 127.0.0.1:40123
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams.errors import LocalBrokerError
from streams.kafka_jars import ensure_broker_jars
from streams.settings import LocalBrokerSettings

log = logging.getLogger(__name__)

LOG4J2_PROPERTIES = """\
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""


class LocalKafka:
    """One KRaft node (broker + controller) on 127.0.0.1, owned by this object."""

    def __init__(self, data_dir: Path, settings: LocalBrokerSettings | None = None) -> None:
        self.data_dir = data_dir
        self.settings = settings or LocalBrokerSettings()
        self.broker_port = 0
        self._controller_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT``; valid after ``start()``."""
        if not self.broker_port:
            raise LocalBrokerError("the local broker has not been started")
        return f"127.0.0.1:{self.broker_port}"

    @property
    def log_file(self) -> Path:
        """The broker's own log (server.log), useful when start-up fails."""
        return self.data_dir / "logs" / "server.log"

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs."""
        return self._process.pid if self._process else None

    def start(self, *, detach: bool = False) -> str:
        """Fetch jars if needed, format storage, start the JVM and wait until it serves.

        ``detach=True`` puts the JVM in its own session so it outlives this Python process
        (``feedline kafka start``); stop it later with ``stop_pid``.
        """
        libs = ensure_broker_jars(self.settings.cache_dir, self.settings.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        properties = self._config()
        if not self.formatted:
            self._format_storage(libs, properties)
        self._check_ports_free()
        self._process = self._launch(libs, properties, detach)
        self._wait_until_serving()
        log.info("local Kafka %s serving on %s", self.settings.version, self.bootstrap_servers)
        return self.bootstrap_servers

    @property
    def formatted(self) -> bool:
        """Whether the data directory already holds formatted KRaft storage."""
        return (self.data_dir / "kraft-logs" / "meta.properties").exists()

    def stop(self, grace_s: float = 30.0) -> None:
        """Shut the broker down cleanly (SIGTERM), killing it after ``grace_s`` seconds."""
        if self._process is None:
            return
        stop_pid(self._process.pid, grace_s)
        self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL the broker: a crash, with no clean shutdown. ``start()`` brings it back on
        the same ports and data."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _config(self) -> Path:
        """``server.properties``: the existing one (same ports, same storage), or a new one on
        free ports for an empty directory."""
        (self.data_dir / "logs").mkdir(exist_ok=True)
        properties = self.data_dir / "server.properties"
        if properties.exists():
            self.broker_port, self._controller_port = _ports(properties)
        else:
            self.broker_port, self._controller_port = free_port(), free_port()
            text = _server_properties(self.data_dir, self.broker_port, self._controller_port)
            properties.write_text(text)
        (self.data_dir / "log4j2.properties").write_text(
            LOG4J2_PROPERTIES.format(log_file=self.log_file)
        )
        return properties

    def _check_ports_free(self) -> None:
        for port in (self.broker_port, self._controller_port):
            if not port_free(port):
                raise LocalBrokerError(
                    f"port {port} of the broker in {self.data_dir} is in use: is that broker "
                    "already running (feedline kafka stop), or another program on it? "
                    f"To start afresh on new ports, delete {self.data_dir}"
                )

    def _java(self, libs: Path, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xms{self.settings.heap}",
            f"-Xmx{self.settings.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]

    def _format_storage(self, libs: Path, properties: Path) -> None:
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        command = self._java(
            libs,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(properties),
            "--ignore-formatted",
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalBrokerError(f"formatting Kafka storage failed: {result.stderr[-2000:]}")

    def _launch(self, libs: Path, properties: Path, detach: bool) -> subprocess.Popen[bytes]:
        with (self.data_dir / "logs" / "console.log").open("ab") as console:
            return subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(properties)),
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=detach,
            )

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise LocalBrokerError(f"the broker exited during start-up:\n{self._log_tail()}")
            try:
                if admin.list_topics(timeout=1.0).brokers:
                    return
            except KafkaException:  # not accepting requests yet
                time.sleep(0.2)
        self.stop(grace_s=5)
        raise LocalBrokerError(
            f"the broker did not serve within {self.settings.start_timeout_s:.0f}s:\n"
            f"{self._log_tail()}"
        )

    def _log_tail(self, chars: int = 3000) -> str:
        logs = [self.log_file, self.data_dir / "logs" / "console.log"]
        return "\n".join(p.read_text(errors="replace")[-chars:] for p in logs if p.exists())


def _server_properties(data_dir: Path, broker_port: int, controller_port: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir / "kraft-logs"),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "log.cleaner.dedupe.buffer.size": "2097152",
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _ports(properties: Path) -> tuple[int, int]:
    """(broker port, controller port) of an existing ``server.properties``."""
    listeners = ""
    for line in properties.read_text().splitlines():
        if line.startswith("listeners="):
            listeners = line.removeprefix("listeners=")
    ports = dict(re.findall(r"(PLAINTEXT|CONTROLLER)://[^:]+:(\d+)", listeners))
    if set(ports) != {"PLAINTEXT", "CONTROLLER"}:
        raise LocalBrokerError(f"{properties} has no PLAINTEXT and CONTROLLER listeners")
    return int(ports["PLAINTEXT"]), int(ports["CONTROLLER"])


def port_free(port: int) -> bool:
    """Whether a TCP port on 127.0.0.1 can be bound now (SO_REUSEADDR, as the JVM binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_pid(pid: int, grace_s: float = 30.0) -> bool:
    """SIGTERM ``pid``, wait up to ``grace_s``, then SIGKILL. False if it was not running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    log.warning("broker pid %d ignored SIGTERM for %.0fs; killing it", pid, grace_s)
    os.kill(pid, signal.SIGKILL)
    return True


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (and is not a zombie child of ours)."""
    return _alive(pid)


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: fall back to a signal-0 probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not _zombie(pid)  # dead, not yet reaped by its parent
    return finished == 0


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
