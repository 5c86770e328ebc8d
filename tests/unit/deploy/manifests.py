"""The rendered manifests as the drift checks read them: each container with the environment
it would really get (envFrom ConfigMaps and Secrets, then env), its ports, probes and mounts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
OVERLAYS = ("base", "overlays/example", "overlays/gpu")
"""Every kustomization under deploy/kubernetes that is meant to be applied."""
WORKLOADS = ("Deployment", "StatefulSet", "Job")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


@dataclass(frozen=True)
class Container:
    """One container of a workload of the rendered manifests."""

    workload: Obj
    spec: Obj
    env: dict[str, str]
    """The environment the process would see (``fieldRef`` metadata.name: the first pod's)."""

    @property
    def where(self) -> str:
        """``Kind/name[container]``, for messages."""
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}[{self.spec['name']}]"

    @property
    def pod(self) -> Obj:
        """The pod template."""
        template: Obj = self.workload["spec"]["template"]
        return template

    @property
    def ports(self) -> dict[str, int]:
        """containerPort by name (unnamed ones by their number)."""
        return {
            p.get("name", str(p["containerPort"])): p["containerPort"]
            for p in self.spec.get("ports", [])
        }

    def port_number(self, port: int | str) -> int | None:
        """A probe's or Service's port (name or number) as this container's port number."""
        if isinstance(port, int):
            return port if port in self.ports.values() else None
        return self.ports.get(port)

    def probes(self) -> Iterator[tuple[str, Obj]]:
        """(kind, probe) for each probe the container has."""
        for kind in PROBES:
            if kind in self.spec:
                yield kind, self.spec[kind]

    def mounts(self) -> dict[str, str]:
        """mountPath → volume name."""
        return {m["mountPath"]: m["name"] for m in self.spec.get("volumeMounts", [])}


class Manifests:
    """The objects of one ``kustomize build``, looked up by kind and name."""

    def __init__(self, objects: list[Obj]) -> None:
        self.objects = objects

    def of_kind(self, kind: str) -> list[Obj]:
        """Every object of ``kind``."""
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj | None:
        """The object ``kind/name``, or None when the build has none."""
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        return found[0] if found else None

    def data(self, kind: str, name: str) -> dict[str, str] | None:
        """The keys and values of ConfigMap or Secret ``name`` (None: not rendered)."""
        obj = self.get(kind, name)
        if obj is None:
            return None
        return {**obj.get("data", {}), **obj.get("stringData", {})}

    def containers(self) -> list[Container]:
        """Every container of every workload, with its environment resolved."""
        return [
            Container(workload, spec, self._environment(workload, spec))
            for workload in self.objects
            if workload["kind"] in WORKLOADS
            for spec in workload["spec"]["template"]["spec"]["containers"]
        ]

    def container_of(self, kind: str, name: str) -> Container:
        """The (first) container of workload ``kind/name``."""
        found = [c for c in self.containers() if c.workload["kind"] == kind]
        found = [c for c in found if c.workload["metadata"]["name"] == name]
        assert found, f"no {kind}/{name} in the build"
        return found[0]

    def env_sources(self, spec: Obj) -> Iterator[tuple[str, str, dict[str, str] | None]]:
        """(kind, name, data) of each ConfigMap/Secret the container reads with envFrom."""
        for source in spec.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    ref = source[key]
                    data = self.data(kind, ref["name"])
                    assert data is not None or ref.get("optional"), (
                        f"{spec['name']} reads {kind}/{ref['name']}, which the build lacks"
                    )
                    yield kind, ref["name"], data

    def _environment(self, workload: Obj, spec: Obj) -> dict[str, str]:
        env: dict[str, str] = {}
        for _, _, data in self.env_sources(spec):
            env.update(data or {})
        for var in spec.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[var["name"]] = f"{workload['metadata']['name']}-0"
            else:
                raise AssertionError(f"{spec['name']}: {var['name']} comes from {var}")
        return env


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels form) selects ``labels``."""
    return all(labels.get(k) == v for k, v in selector.items())
