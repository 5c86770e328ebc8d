"""Kubernetes OpenAPI v2 (``api/openapi-spec/swagger.json``) to kubeconform's JSON schemas.

Writes one standalone, strict schema per group-version-kind, named as kubeconform looks them
up with ``-schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json'``:
``deployment-apps-v1.json``, ``service-v1.json``, ``poddisruptionbudget-policy-v1.json``.
The rules are those of the schemas kubeconform fetches by default (yannh/kubernetes-json-schema,
``-standalone-strict``), so an offline run validates as an online one would:

- standalone: each file carries the definitions it reaches under ``definitions`` (the spec's
  ``#/definitions/...`` references then resolve inside the file);
- strict: every object schema that lists ``properties`` and says nothing about
  ``additionalProperties`` gets ``additionalProperties: false`` (an unknown or misspelt field
  is an error, as the API server's field validation makes it);
- ``IntOrString`` accepts a string or an integer, ``Quantity`` a string or a number (both
  are strings in the spec, but ``port: 8080`` and ``nvidia.com/gpu: 1`` are what the API
  server accepts and what people write);
- ``apiVersion`` and ``kind`` are pinned to the kind's own (``enum``); descriptions are
  dropped (they are most of the spec's size and validate nothing).

Usage: python scripts/k8s_schemas.py swagger.json OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

Schema = dict[str, Any]
REF_PREFIX = "#/definitions/"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
OVERRIDES: dict[str, Schema] = {
    INT_OR_STRING: {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    QUANTITY: {"oneOf": [{"type": "string"}, {"type": "number"}]},
}


def normalise(schema: Any) -> Any:
    """``schema`` without descriptions, strict, with int-or-string fields as a ``oneOf``."""
    if not isinstance(schema, dict):
        return schema
    if schema.get("format") == "int-or-string":
        return dict(OVERRIDES[INT_OR_STRING])
    out: Schema = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key == "properties":
            out[key] = {name: normalise(prop) for name, prop in value.items()}
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [normalise(item) for item in value]
        elif key in ("items", "additionalProperties", "not"):
            out[key] = normalise(value)
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def references(schema: Any) -> set[str]:
    """Definition names ``schema`` refers to directly."""
    if isinstance(schema, dict):
        found = set()
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                found.add(value.removeprefix(REF_PREFIX))
            else:
                found |= references(value)
        return found
    if isinstance(schema, list):
        return set().union(*map(references, schema)) if schema else set()
    return set()


def reachable(name: str, definitions: dict[str, Schema]) -> dict[str, Schema]:
    """The definitions reachable from ``name`` (``name`` included), by name."""
    seen: dict[str, Schema] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen[current] = definitions[current]
        todo += sorted(references(definitions[current]) - seen.keys())
    return seen


def kind_suffix(group: str, version: str) -> str:
    """kubeconform's ``KindSuffix``: ``-v1`` for the core group, ``-apps-v1``, ``-rbac-v1``."""
    return f"-{group.split('.')[0].lower()}-{version}" if group else f"-{version}"


def standalone(name: str, gvk: dict[str, str], definitions: dict[str, Schema]) -> Schema:
    """The schema of one kind, with every definition it needs embedded."""
    root = json.loads(json.dumps(definitions[name]))
    api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
    properties = root.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string", "enum": [api_version]}
    properties["kind"] = {"type": "string", "enum": [gvk["kind"]]}
    root.pop("x-kubernetes-group-version-kind", None)
    needed = reachable(name, definitions)
    needed.pop(name)
    return {"$schema": "http://json-schema.org/draft-07/schema#", **root, "definitions": needed}


def convert(swagger: Path, out_dir: Path) -> int:
    """Write every kind's schema of ``swagger`` into ``out_dir``; return how many."""
    spec = json.loads(swagger.read_text())
    definitions = {name: normalise(d) for name, d in spec["definitions"].items()}
    definitions.update(OVERRIDES)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, raw in spec["definitions"].items():
        for gvk in raw.get("x-kubernetes-group-version-kind", []):
            path = (
                out_dir / f"{gvk['kind'].lower()}{kind_suffix(gvk['group'], gvk['version'])}.json"
            )
            path.write_text(json.dumps(standalone(name, gvk, definitions), sort_keys=True))
            written += 1
    return written


def main(argv: list[str]) -> int:
    """Command line: ``k8s_schemas.py swagger.json OUT_DIR``."""
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    count = convert(Path(argv[1]), Path(argv[2]))
    print(f"k8s_schemas.py: wrote {count} schemas to {argv[2]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
