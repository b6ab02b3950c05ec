"""Fixtures for the deployment checks: a Helm binary (built once with `go install` through
the Go module proxy by deploy/tools/ensure-helm.sh, then cached) and rendered charts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.chart import ENSURE_HELM, VALUE_SETS, HelmRun

# tests/deploy/image runs the built image with podman (`make image-test` sets RAPPORT_IMAGE),
# tests/deploy/cluster installs the chart on a Kubernetes node (`make cluster-test` sets
# RAPPORT_CLUSTER_HOST): neither is collected otherwise, so `make test` needs neither podman
# nor a cluster and waits for no image build.
collect_ignore = [] if os.environ.get("RAPPORT_IMAGE") else ["image"]
if not os.environ.get("RAPPORT_CLUSTER_HOST"):
    collect_ignore.append("cluster")


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of a Helm 3 binary: on PATH, or built and cached by deploy/tools/ensure-helm.sh
    (a few minutes the first time, instant afterwards)."""
    try:
        result = subprocess.run(
            ["bash", str(ENSURE_HELM)], capture_output=True, text=True, timeout=1500
        )
    except subprocess.TimeoutExpired as error:  # pragma: no cover - depends on the machine
        pytest.fail(f"deploy/tools/ensure-helm.sh did not finish: {error}")
    if result.returncode != 0:
        pytest.fail(f"deploy/tools/ensure-helm.sh failed:\n{result.stderr[-4000:]}")
    path = result.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), path
    return path


@pytest.fixture(scope="session")
def helm_run(helm: str) -> HelmRun:
    return HelmRun(helm)


@pytest.fixture(scope="session")
def rendered(helm_run: HelmRun) -> Callable[[str], list[dict[str, Any]]]:
    """Rendered manifests per value set ("default", "production"), rendered once."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def get(name: str) -> list[dict[str, Any]]:
        if name not in cache:
            cache[name] = helm_run.template(VALUE_SETS[name])
        return cache[name]

    return get
