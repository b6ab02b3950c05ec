"""Rendering the Helm chart for the deployment checks."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "rapport"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
ENSURE_HELM = DEPLOY / "tools" / "ensure-helm.sh"
SERVICES = ("intake", "feedback", "analytics", "notify")

# The values files every chart check runs with.
VALUE_SETS: dict[str, tuple[Path, ...]] = {"default": (), "production": (PRODUCTION_VALUES,)}


class HelmRun:
    def __init__(self, helm: str) -> None:
        self.helm = helm

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.helm, *args], capture_output=True, text=True, timeout=120, cwd=REPO
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    def template_args(
        self,
        values: Sequence[Path] = (),
        sets: Sequence[str] = (),
        release: str = "rapport",
        namespace: str = "rapport",
        chart: Path = CHART,
    ) -> list[str]:
        args = ["template", release, str(chart), "--namespace", namespace]
        for path in values:
            args += ["-f", str(path)]
        for item in sets:
            args += ["--set", item]
        return args

    def template(
        self, values: Sequence[Path] = (), sets: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        output = self.run(*self.template_args(values, sets)).stdout
        return [doc for doc in yaml.safe_load_all(output) if doc]

    def template_fails(self, values: Sequence[Path] = (), sets: Sequence[str] = ()) -> str:
        result = self.run(*self.template_args(values, sets), check=False)
        assert result.returncode != 0, "helm template unexpectedly succeeded"
        return result.stderr


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
    return found[0]
