"""kustomize and kubeconform for the tests of deploy/kubernetes (scripts/k8s_tools.sh).

Nothing here downloads: the script builds the pinned tools and generates the schemas once
into its cache (``make setup`` runs it); a test that cannot have them fails with the reason.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
SCHEMA_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"


@dataclass(frozen=True)
class K8sTools:
    """The directory scripts/k8s_tools.sh prints: the binaries, schemas and facts it made."""

    root: Path

    @property
    def schema_location(self) -> str:
        """kubeconform's ``-schema-location``: the generated schemas, nothing else."""
        return str(self.root / "schemas" / SCHEMA_TEMPLATE)

    def kafka_scaler_params(self) -> dict[str, set[str]]:
        """KEDA's kafka scaler parameters → where each may come from (``triggerMetadata``,
        ``authParams``, ``resolvedEnv``), read from the scaler's source by the script."""
        params: dict[str, set[str]] = {}
        for line in (self.root / "kafka-scaler-params.txt").read_text().splitlines():
            name, order = line.split()
            params[name] = set(order.split(";"))
        return params

    def build(self, overlay: str) -> str:
        """``kustomize build deploy/kubernetes/OVERLAY``: the rendered manifests."""
        return _run([str(self.root / "kustomize"), "build", str(KUBERNETES / overlay)])

    def validate(self, manifests: str) -> dict[str, Any]:
        """kubeconform's JSON report (``resources`` and ``summary``) on ``manifests``: strict,
        against the local schemas only; a kind without a schema is an error, not a skip."""
        command = [
            str(self.root / "kubeconform"), "-strict", "-summary", "-verbose", "-output", "json",
            "-schema-location", self.schema_location, "-",
        ]  # fmt: skip
        out = _run(command, manifests, ok=(0, 1))
        report: dict[str, Any] = json.loads(out)
        return report

    def summary(self, manifests: str) -> str:
        """kubeconform's one-line text summary on ``manifests`` (for people)."""
        command = [
            str(self.root / "kubeconform"), "-strict", "-summary",
            "-schema-location", self.schema_location, "-",
        ]  # fmt: skip
        return _run(command, manifests, ok=(0, 1)).strip().splitlines()[-1]


def find_k8s_tools() -> K8sTools:
    """The tools scripts/k8s_tools.sh finds or builds; fails the test with its reason."""
    script = ROOT / "scripts" / "k8s_tools.sh"
    result = subprocess.run(
        ["sh", str(script)], capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            "kustomize/kubeconform could not be obtained (they are built from the Go module "
            f"proxy once, by `make k8s-tools`).\n{script} said:\n{result.stderr}",
            pytrace=False,
        )
    return K8sTools(Path(result.stdout.strip()))


def load_all(manifests: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream."""
    return [doc for doc in yaml.safe_load_all(manifests) if doc]


def _run(command: list[str], stdin: str | None = None, ok: tuple[int, ...] = (0,)) -> str:
    result = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode in ok, (
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    return result.stdout
