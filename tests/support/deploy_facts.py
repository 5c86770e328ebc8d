"""What the code reads and serves, for the drift checks of compose.yaml and deploy/kubernetes.

Every fact comes from the code itself, never from a copy: the ``FEEDLINE_*`` names are the
fields of the settings classes, a role's address is what its settings class makes of the
environment it is given (and its ``--host``/``--port`` flags), the query service's paths are
its FastAPI app's routes, the consumer groups and their topics are the lag exporter's
``pipeline_groups`` (which names them as the roles do).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TypeVar
from unittest import mock

from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from feedline.cli import app
from index_store import IndexSettings
from models.settings import EncoderSettings
from service.ranker_settings import RankerSettings
from service.settings import ServiceSettings
from streams.embed_worker import EmbedWorkerSettings
from streams.lag import GroupSpec
from streams.lag_exporter import EmbedGroupSettings, LagExporterSettings, pipeline_groups
from streams.prompt_settings import PromptWorkerSettings
from streams.settings import KafkaSettings

SETTINGS: list[type[BaseSettings]] = [
    KafkaSettings, PromptWorkerSettings, EmbedWorkerSettings, EncoderSettings, ServiceSettings,
    IndexSettings, RankerSettings, LagExporterSettings,
]  # fmt: skip
"""The settings classes the deployed roles read (``feedline serve`` reads the last four)."""
OTHER_VARIABLES = {"FEEDLINE_LOG_LEVEL"}  # read by feedline.cli itself
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True)
class Role:
    """A command the image runs, and where it serves HTTP (``settings`` None: nowhere)."""

    words: tuple[str, ...]
    settings: type[BaseSettings] | None = None
    host_field: str = "host"
    port_field: str = "port"
    flags: bool = False
    """Whether ``--host``/``--port`` on the command line override the settings."""


ROLES = {
    "topics": Role(("topics", "create")),
    "prompts": Role(("worker", "prompts"), PromptWorkerSettings, "metrics_host", "metrics_port"),
    "embed": Role(("worker", "embed"), EmbedWorkerSettings, "metrics_host", "metrics_port"),
    "serve": Role(("serve",), ServiceSettings, flags=True),
    "lag": Role(("lag", "serve"), LagExporterSettings, flags=True),
}
METRICS_PATHS = {"/metrics"}  # the workers' and the lag exporter's prometheus_client server


def known_env_vars() -> set[str]:
    """Every ``FEEDLINE_*`` variable some settings class of a deployed role reads."""
    names = set(OTHER_VARIABLES)
    for settings in SETTINGS:
        prefix = settings.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in settings.model_fields}
    return names


def role_of(args: Sequence[str]) -> str:
    """The role a container's arguments run (``["worker", "embed"]`` → ``embed``)."""
    for name, role in ROLES.items():
        if tuple(args[: len(role.words)]) == role.words:
            return name
    raise AssertionError(f"{list(args)} runs no known feedline role")


def cli_accepts(args: Sequence[str]) -> tuple[bool, str]:
    """Whether ``feedline ARGS --help`` parses (a real command with real options)."""
    result = CliRunner().invoke(app, [*args, "--help"])
    return result.exit_code == 0, result.output


def read_settings(cls: type[S], env: Mapping[str, str]) -> S:
    """``cls`` as a process whose environment is exactly ``env`` reads it (values validated)."""
    with mock.patch.dict(os.environ, dict(env), clear=True):
        return cls()


def listen_address(role: str, env: Mapping[str, str], args: Sequence[str]) -> tuple[str, int]:
    """The host and port ``role`` serves HTTP on, run with ``env`` and ``args``."""
    spec = ROLES[role]
    assert spec.settings is not None, f"{role} serves no HTTP"
    settings = read_settings(spec.settings, env)
    host, port = getattr(settings, spec.host_field), getattr(settings, spec.port_field)
    if spec.flags:
        host = _flag(args, "--host") or host
        port = int(_flag(args, "--port") or port)
    return host, port


def served_paths(role: str) -> set[str]:
    """The fixed HTTP GET paths ``role`` answers (the query service's: its app's OpenAPI
    document, which lists the routes of every router the app includes)."""
    if role != "serve":
        return METRICS_PATHS
    from service.app import build_api

    paths = build_api().openapi()["paths"]
    return {path for path, operations in paths.items() if "get" in operations and "{" not in path}


def consumer_group(role: str, env: Mapping[str, str]) -> GroupSpec:
    """The consumer group ``role`` joins with ``env``, and its input topics (cluster names)."""
    kafka = read_settings(KafkaSettings, env)
    groups = pipeline_groups(
        kafka,
        read_settings(PromptWorkerSettings, env),
        read_settings(EmbedGroupSettings, env),
        read_settings(IndexSettings, env),
    )
    if role == "prompts":
        name = kafka.topic(read_settings(PromptWorkerSettings, env).app_id)
    elif role == "embed":
        name = kafka.topic(read_settings(EmbedWorkerSettings, env).group_id)
    else:
        raise AssertionError(f"{role} joins no consumer group")
    (spec,) = [g for g in groups if g.group == name]
    return spec


def written_dirs(role: str, env: Mapping[str, str]) -> list[PurePosixPath]:
    """Directories ``role`` writes to with ``env``: they must be on a writable volume (the
    image's working directory belongs to root, and the roles run as ``nobody``)."""
    if role == "prompts":
        settings = read_settings(PromptWorkerSettings, env)
        return [PurePosixPath(settings.data_dir)] if settings.store == "rocksdb" else []
    if role == "serve":
        index = read_settings(IndexSettings, env)
        return [PurePosixPath(index.snapshot_dir)] if index.snapshots_enabled else []
    return []


def under(path: PurePosixPath, mounts: Sequence[str]) -> bool:
    """Whether absolute ``path`` lies at or below one of ``mounts``."""
    return path.is_absolute() and any(path.is_relative_to(m) for m in mounts)


def _flag(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
