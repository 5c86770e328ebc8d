"""Fetch the Apache Kafka broker jars from Maven Central once and cache them.

The broker's runtime classpath is what ``mvn dependency:copy-dependencies`` resolves for a tiny
``packaging=pom`` project naming ``org.apache.kafka:kafka_2.13`` plus a log4j backend (the POM
has none). The jars land in ``<cache>/<kafka version>/libs``, outside the repository; a second
call finds them and returns at once.

Example::

    libs = ensure_broker_jars(Path.home() / ".cache/feedline/kafka", "4.1.1")
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from streams.errors import LocalBrokerError

POM_TEMPLATE = Path(__file__).with_name("kafka_local") / "pom.xml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"
_COMPLETE_MARKER = ".complete"


def ensure_broker_jars(cache_dir: Path, kafka_version: str) -> Path:
    """Return a directory holding the broker classpath, fetching it with Maven on first use.

    Concurrent callers (a demo and a test run) serialise on a file lock, and a partial fetch
    never looks complete: the jars are copied to a temporary folder and renamed when done.
    """
    version_dir = cache_dir / kafka_version
    libs = version_dir / "libs"
    if (libs / _COMPLETE_MARKER).exists():
        return libs
    version_dir.mkdir(parents=True, exist_ok=True)
    with (version_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (libs / _COMPLETE_MARKER).exists():
            _fetch(version_dir, kafka_version, libs)
    return libs


def _fetch(version_dir: Path, kafka_version: str, libs: Path) -> None:
    if shutil.which("mvn") is None:
        raise LocalBrokerError(
            "Maven (mvn) is not on PATH; it is needed once to fetch the Kafka broker jars. "
            "Install Maven (e.g. `apt-get install maven`) or point "
            "FEEDLINE_KAFKA_BOOTSTRAP_SERVERS at an existing cluster."
        )
    pom = version_dir / "pom.xml"
    pom.write_text(POM_TEMPLATE.read_text().replace("${kafka.version}", kafka_version))
    staging = version_dir / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        "mvn",
        "-B",
        "-q",
        "-f",
        str(pom),
        DEPENDENCY_PLUGIN,
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        raise LocalBrokerError(
            f"fetching Kafka {kafka_version} jars with Maven failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-2000:]}"
        )
    (staging / _COMPLETE_MARKER).write_text(kafka_version)
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
