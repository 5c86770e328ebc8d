"""The pinned kustomize/kubeconform (scripts/k8s_tools.sh) and each overlay rendered once."""

from __future__ import annotations

import pytest

from tests.support.k8s_tools import K8sTools, find_k8s_tools, load_all
from tests.unit.deploy.manifests import OVERLAYS, Manifests


@pytest.fixture(scope="session")
def k8s_tools() -> K8sTools:
    """kustomize, kubeconform and the offline schemas; the test fails when they are missing."""
    return find_k8s_tools()


@pytest.fixture(scope="session")
def rendered(k8s_tools: K8sTools) -> dict[str, str]:
    """``kustomize build`` of each overlay."""
    return {overlay: k8s_tools.build(overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def builds(rendered: dict[str, str]) -> dict[str, Manifests]:
    """Each overlay's objects."""
    return {overlay: Manifests(load_all(text)) for overlay, text in rendered.items()}
