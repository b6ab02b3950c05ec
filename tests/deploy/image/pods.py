"""The chart's pods as podman containers: a container of a rendered Deployment or Job becomes
the `podman run` arguments that give it the same command, environment (ConfigMap and Secret
references resolved), user, read-only root, dropped capabilities, /tmp volume and memory
limit. One deliberate difference: the containers share the host's network (the test stack
listens on loopback), so each gets its own RAPPORT_HTTP_PORT instead of the chart's 8000."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.chart import REPO

PODMAN = REPO / "deploy" / "tools" / "podman.sh"
LABEL = "org.rapport.image-test"  # every container the test starts carries it (for cleanup)
UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(PODMAN), *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} failed:\n{result.stderr[-3000:]}")
    return result


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (64Mi, 512M, 1Gi) in bytes."""
    match = re.fullmatch(r"(\d+)([KMG]i?)?", quantity)
    assert match, f"unsupported quantity {quantity}"
    return int(match.group(1)) * UNITS.get(match.group(2) or "", 1)


@dataclass
class PodTemplate:
    """One container of a rendered pod template, and what it needs from Secrets/ConfigMaps."""

    name: str
    pod: dict[str, Any]  # the pod spec
    container: dict[str, Any]

    @classmethod
    def of(cls, workload: dict[str, Any]) -> PodTemplate:
        # A Deployment's or Job's pod template, or a bare Pod (the chart's `helm test` pod).
        spec = workload["spec"].get("template", {}).get("spec") or workload["spec"]
        (container,) = spec["containers"]
        return cls(workload["metadata"]["name"], spec, container)

    def env(
        self, config_maps: Mapping[str, Mapping[str, str]], secrets: Mapping[str, Mapping[str, str]]
    ) -> dict[str, str]:
        """The environment Kubernetes would give the container (envFrom, then env)."""
        env: dict[str, str] = {}
        for source in self.container.get("envFrom", []):
            env.update(config_maps[source["configMapRef"]["name"]])
        for entry in self.container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = str(entry["value"])
                continue
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
        return env

    def probe(self, kind: str) -> dict[str, Any]:
        probe: dict[str, Any] = self.container[f"{kind}Probe"]
        return probe

    def run_args(self, env: Mapping[str, str], name: str, labels: Sequence[str] = ()) -> list[str]:
        """`podman run` options, image and arguments for this container (without `run`)."""
        pod_security = self.pod.get("securityContext", {})
        security = self.container.get("securityContext", {})
        args = ["--name", name, "--network", "host", "--pull", "never", "--label", LABEL]
        for label in labels:
            args += ["--label", label]
        user = security.get("runAsUser", pod_security.get("runAsUser"))
        group = security.get("runAsGroup", pod_security.get("runAsGroup"))
        if user is not None:
            args += ["--user", f"{user}:{group}" if group is not None else str(user)]
        if "fsGroup" in pod_security:
            args += ["--group-add", str(pod_security["fsGroup"])]
        if security.get("readOnlyRootFilesystem"):
            # Only the pod's volumes are writable: podman's own tmpfs mounts on /run, /tmp and
            # /var/tmp (its --read-only default) are turned off.
            args += ["--read-only", "--read-only-tmpfs=false"]
        if "ALL" in security.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", "ALL"]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        assert not security.get("privileged"), "a privileged container"
        memory = self.container.get("resources", {}).get("limits", {}).get("memory")
        if memory:
            args += ["--memory", str(quantity_bytes(memory))]
        grace = self.pod.get("terminationGracePeriodSeconds")
        if grace is not None:
            args += ["--stop-timeout", str(grace)]
        args += self._volumes()
        for key, value in sorted(env.items()):
            args += ["--env", f"{key}={value}"]
        command = self.container.get("command")
        if command:
            args += ["--entrypoint", command[0]]
        image = self.container["image"]
        return [*args, image, *(command or [])[1:], *self.container.get("args", [])]

    def _volumes(self) -> list[str]:
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        args: list[str] = []
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            assert "emptyDir" in volume, f"volume {mount['name']}: only emptyDir is mapped"
            size = quantity_bytes(volume["emptyDir"].get("sizeLimit", "64Mi"))
            args += ["--tmpfs", f"{mount['mountPath']}:rw,size={size},mode=1777"]
        return args


@dataclass
class Container:
    """A running container of the image."""

    name: str
    port: int = 0
    logs_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def exec(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *argv, timeout=timeout, check=False)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"


def remove_containers(label: str) -> None:
    """Remove every container of this run (running or not)."""
    found = podman("ps", "-a", "-q", "--filter", f"label={label}", check=False).stdout.split()
    if found:
        podman("rm", "-f", "-t", "5", *found, check=False, timeout=180)
