"""deploy/kubernetes renders with kustomize, and every object it renders is valid for
Kubernetes and KEDA according to kubeconform, strict, against schemas generated offline from
the pinned Kubernetes OpenAPI spec and KEDA CRDs (scripts/k8s_tools.sh)."""

from __future__ import annotations

import pytest

from tests.support.k8s_tools import KUBERNETES, K8sTools, load_all
from tests.unit.deploy.manifests import OVERLAYS

NO_SCHEMA_KIND = """
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: feedline}
spec: {}
"""


def test_every_kustomization_is_rendered_by_these_tests() -> None:
    found = {str(p.parent.relative_to(KUBERNETES)) for p in KUBERNETES.rglob("kustomization.yaml")}
    assert found == set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid(
    k8s_tools: K8sTools, rendered: dict[str, str], overlay: str
) -> None:
    report = k8s_tools.validate(rendered[overlay])
    problems = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert problems == [], k8s_tools.summary(rendered[overlay])
    summary = report["summary"]
    assert summary == {
        "valid": len(load_all(rendered[overlay])),
        "invalid": 0,
        "errors": 0,
        "skipped": 0,
    }


def test_the_validator_fails_unknown_kinds_misspelt_fields_and_wrong_types(
    k8s_tools: K8sTools, rendered: dict[str, str]
) -> None:
    # the negative control: were the schemas lax or missing, every test above would pass
    broken = (
        rendered["base"]
        .replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:", 1)
        .replace("maxReplicaCount: 4", "maxReplicaCount: four", 1)
    )
    report = k8s_tools.validate(broken + "---" + NO_SCHEMA_KIND)
    status = {(r["kind"], r["status"]) for r in report["resources"] if r["status"] != "statusValid"}
    assert status == {
        ("ServiceMonitor", "statusError"),  # no schema: an error, never a skip
        ("Deployment", "statusInvalid"),  # the first workload: the misspelt field
        ("ScaledObject", "statusInvalid"),  # a string where KEDA wants an integer
    }
    assert report["summary"]["skipped"] == 0
    messages = " ".join(r["msg"] for r in report["resources"])
    assert "'terminationGracePeriodSecond' not allowed" in messages
    assert "could not find schema for ServiceMonitor" in messages
