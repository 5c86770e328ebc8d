"""Running feedline roles as child processes (the demo and the integration tests use this).

Each role is ``python -m feedline <args>`` (or another module, for benchmark baselines) with
its settings in the environment and its output in a log file, so a failure can be diagnosed
after the fact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType


class RoleProcess:
    """One role in a child process: ``start()``, ``stop()`` (SIGTERM), ``kill()`` (SIGKILL)."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        log_dir: Path,
        module: str = "feedline",
    ) -> None:
        self.name = name
        self.args = args
        self.module = module
        self.env = dict(env)
        self.log_file = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RoleProcess:
        """Spawn the role (appending to its log file)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (or until it is waited for)."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the child process lives."""
        return self._process is not None and self._process.poll() is None

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s``; returns the exit code."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
        code = self._process.wait()
        self._process = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush or commit."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def log_tail(self, chars: int = 4_000) -> str:
        """The end of the role's log."""
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""


class RoleGroup:
    """Several roles started and stopped together (stopped in reverse order)."""

    def __init__(self, *roles: RoleProcess) -> None:
        self.roles = {role.name: role for role in roles}

    def __getitem__(self, name: str) -> RoleProcess:
        return self.roles[name]

    def __enter__(self) -> RoleGroup:
        for role in self.roles.values():
            role.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for role in reversed(list(self.roles.values())):
            role.stop()

    def failed(self) -> list[str]:
        """Names of roles that exited on their own."""
        return [name for name, role in self.roles.items() if not role.running]


def pipeline_roles(env: Mapping[str, str], log_dir: Path, service_port: int) -> RoleGroup:
    """The three pipeline roles: prompt processor, embedding worker, query service."""
    return RoleGroup(
        RoleProcess("prompts", ["worker", "prompts"], env, log_dir),
        RoleProcess("embed", ["worker", "embed"], env, log_dir),
        RoleProcess("serve", ["serve", "--port", str(service_port)], env, log_dir),
    )
