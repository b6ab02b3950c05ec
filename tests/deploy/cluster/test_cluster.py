"""`make cluster-test`: the chart installed with Helm on a real single-node Kubernetes.

deploy/cluster/cluster.sh brings the node up (Kubernetes' components built from their Go
modules, containerd and runc, the CNI bridge) and loads the image `make image` built. Here:
a namespace that enforces the Pod Security Standard "restricted", a Secret for this machine's
Kafka, PostgreSQL and Redis (listening on the bridge's address, which the pods reach), then
`helm install --wait --wait-for-jobs`, the probes and the end-to-end flow through the four
Services, what a process in a pod can do, `helm upgrade` to another log level while requests
keep going to every Service (none may fail), and `helm uninstall`.

Collected only when RAPPORT_CLUSTER_HOST is set (tests/deploy/conftest.py); the tests run in
file order on one release."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from shared.auth import mint_token
from shared.settings import Settings, load_settings
from tests.deploy.chart import CHART, SERVICES
from tests.deploy.flow import SITE, end_to_end_flow
from tests.deploy.image.test_image import (
    INSIDE,
    KEYS,
    SECRET,
    TOOLS,
    create_database,
    drop_database,
)
from tests.support.infra import Infra, app_url
from tests.support.receiver import WebhookReceiver
from tests.support.topics import delete_topics, topics_of

IMAGE = os.environ.get("RAPPORT_IMAGE", "")
HOST = os.environ.get("RAPPORT_CLUSTER_HOST", "")  # the host's address on the pods' bridge
KUBECTL = os.environ.get("RAPPORT_KUBECTL", "kubectl")
HELM = os.environ.get("RAPPORT_HELM", "helm")
CONTAINERD = os.path.join(os.environ.get("RAPPORT_CLUSTER_DIR", ""), "containerd/containerd.sock")
RELEASE = "rapport"
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
INSTALL_TIMEOUT = "20m"  # generous: 2 shared cores start 8 Python pods and 2 Jobs
UPGRADE_VALUE = "config.logLevel=warning"
# Every kind the chart renders (`all`: pods, services, deployments, replica sets, jobs, …).
RELEASED_KINDS = (
    "all,configmaps,secrets,serviceaccounts,networkpolicies,poddisruptionbudgets,ingresses,"
    "horizontalpodautoscalers"
)


def run(*argv: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:4])} … failed:\n{result.stdout}\n{result.stderr}")
    return result


def kubectl(
    *args: str, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run(KUBECTL, *args, timeout=timeout, check=check)


def live_pods(namespace: str, component: str) -> list[str]:
    """The component's pods that are not being deleted (an upgrade's old pods linger)."""
    pods = objects(namespace, "pods", "-l", f"{INSTANCE},app.kubernetes.io/component={component}")
    live = [str(p["metadata"]["name"]) for p in pods if "deletionTimestamp" not in p["metadata"]]
    assert live, f"no running {component} pod"
    return live


def objects(namespace: str, kinds: str, *selector: str) -> list[dict[str, Any]]:
    found = kubectl("-n", namespace, "get", kinds, *selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(found)["items"]
    return items


@dataclass
class Release:
    namespace: str
    prefix: str
    owner_url: str
    settings: Settings
    services: dict[str, str] = field(default_factory=dict)  # service -> "clusterIP:port"
    installed_in: float = 0.0

    def url(self, service: str, path: str) -> str:
        return f"http://{self.services[service]}{path}"

    def auth(self, role: str, sub: str = "staff-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.settings, sub, role, [SITE])}"}

    def helm(self, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
        return run(HELM, *args, "--namespace", self.namespace, timeout=timeout)


def chart_values(infra: Infra, prefix: str) -> list[str]:
    repository, _, tag = IMAGE.rpartition(":")
    return [
        f"image.repository={repository}",
        f"image.tag={tag}",
        "image.pullPolicy=Never",  # loaded into containerd by cluster.sh; nothing to pull
        f"kafka.bootstrap={infra.kafka_bootstrap}",
        f"topics.prefix={prefix}",
        "topics.partitions=3",
        "topics.replication=1",
        "topics.minInsyncReplicas=1",
        "config.allowPrivateWebhooks=true",  # the test's receiver is on the bridge's address
        "migrations.databaseUrl.key=migration-database-url",
    ]


@pytest.fixture(scope="module")
async def release(infra: Infra) -> AsyncIterator[Release]:
    assert IMAGE and HOST, "make cluster-test sets RAPPORT_IMAGE and RAPPORT_CLUSTER_HOST"
    assert HOST in infra.kafka_bootstrap, (
        f"the stack must listen on the bridge's address {HOST} (RAPPORT_STACK_HOST), "
        f"not {infra.kafka_bootstrap}: pods cannot reach the host's loopback"
    )
    suffix = uuid.uuid4().hex[:10]
    namespace, prefix, database = f"rapport-{suffix}", f"clu{suffix}.", f"clu_{suffix}"
    owner = make_url(infra.database_url).set(database=database).render_as_string(False)
    await create_database(infra.database_url, database)
    kubectl("create", "namespace", namespace)
    try:
        # Every pod of the chart must pass the Pod Security Standard "restricted".
        kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
        secret = {
            "database-url": app_url(owner),
            "migration-database-url": owner,
            "redis-url": infra.redis_url,
            **KEYS,
        }
        literals = [f"--from-literal={key}={value}" for key, value in secret.items()]
        kubectl("-n", namespace, "create", "secret", "generic", SECRET, *literals)
        settings = load_settings(
            environment="production",
            database_url=app_url(owner),
            jwt_secret=KEYS["jwt-secret"],
            pseudonym_key=KEYS["pseudonym-key"],
            encryption_key=KEYS["encryption-key"],
        )
        release = Release(namespace, prefix, owner, settings)
        started = time.monotonic()
        sets = [f"--set={item}" for item in chart_values(infra, prefix)]
        release.helm(
            "install", RELEASE, str(CHART), *sets,
            "--wait", "--wait-for-jobs", "--timeout", INSTALL_TIMEOUT,
        )  # fmt: skip
        release.installed_in = time.monotonic() - started
        print(f"helm install: every Job done and every Deployment ready after "
              f"{release.installed_in:.0f} s")  # fmt: skip
        for service in objects(namespace, "services", "-l", INSTANCE):
            component = service["metadata"]["labels"]["app.kubernetes.io/component"]
            port = service["spec"]["ports"][0]["port"]
            release.services[component] = f"{service['spec']['clusterIP']}:{port}"
        yield release
    finally:
        if run(HELM, "status", RELEASE, "-n", namespace, check=False).returncode == 0:
            run(HELM, "uninstall", RELEASE, "-n", namespace, "--wait", check=False, timeout=600)
        kubectl(
            "delete", "namespace", namespace, "--wait", "--timeout=300s", check=False, timeout=400
        )
        await drop_database(infra.database_url, database)
        await delete_topics(infra.kafka_bootstrap, prefix)


def test_install_ran_both_jobs_and_every_deployment_is_available(
    release: Release, infra: Infra
) -> None:
    jobs = {
        j["metadata"]["labels"]["app.kubernetes.io/component"]: j
        for j in objects(release.namespace, "jobs", "-l", INSTANCE)
    }
    assert sorted(jobs) == ["migrate", "topics"], sorted(jobs)
    for name, job in jobs.items():
        assert job["status"].get("succeeded") == 1, (name, job["status"])
    deployments = objects(release.namespace, "deployments", "-l", INSTANCE)
    assert sorted(d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments) == (
        sorted(SERVICES)
    )
    for deployment in deployments:
        status = deployment["status"]
        assert status.get("readyReplicas") == deployment["spec"]["replicas"] >= 1, status
    assert sorted(release.services) == sorted(SERVICES)
    # The pods run the image that was loaded, under the restricted Pod Security Standard.
    for pod in objects(release.namespace, "pods", "-l", INSTANCE):
        assert pod["spec"]["containers"][0]["image"] == IMAGE
    labels = json.loads(kubectl("get", "namespace", release.namespace, "-o", "json").stdout)
    assert labels["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


async def test_probes_and_metrics_answer_through_the_services(release: Release) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for name in SERVICES:
            for path in ("/healthz", "/readyz", "/metrics"):
                answer = await client.get(release.url(name, path))
                assert answer.status_code == 200, (name, path, answer.text[:500])
            ready = (await client.get(release.url(name, "/readyz"))).json()["checks"]
            assert ready["kafka"] == "ok" and ready["redis"] == "ok", (name, ready)
            assert ready[f"{name}.database"] == "ok", (name, ready)


async def test_end_to_end_flow_through_the_services(release: Release, infra: Infra) -> None:
    """intake → match.confirmed → feedback → analytics alerts → notify → verified webhooks,
    every request through a Service's cluster IP, the webhooks from a notify pod."""
    assert f"{release.prefix}match.confirmed.v1" in await topics_of(
        infra.kafka_bootstrap, release.prefix
    )
    try:
        await end_to_end_flow(release, WebhookReceiver(host=HOST))
    except AssertionError as failure:
        logs = kubectl(
            "-n", release.namespace, "logs", "-l", f"{INSTANCE},app.kubernetes.io/component=notify",
            "--prefix", "--tail=200", check=False,
        )  # fmt: skip
        raise AssertionError(f"{failure}\nnotify's logs:\n{logs.stdout[-12000:]}") from failure


def test_inside_a_pod_non_root_read_only_root_and_no_tooling(release: Release) -> None:
    pod = live_pods(release.namespace, "intake")[0]
    result = kubectl(
        "-n", release.namespace, "exec", pod, "--",
        "python", "-c", INSIDE, *TOOLS,
    )  # fmt: skip
    inside = json.loads(result.stdout)
    assert inside["uid"] == inside["euid"] == 10001 and inside["gid"] == 10001, inside
    assert 0 not in inside["groups"], inside["groups"]
    assert set(inside["caps"].values()) == {"0000000000000000"}, inside["caps"]
    assert inside["no_new_privs"] == "1"
    assert "ro" in inside["root_mount_options"], inside["root_mount_options"]
    writes = inside["writes"]
    assert writes.pop("/tmp") == "written"  # the chart's emptyDir
    assert set(writes.values()) == {"EROFS"}, writes
    assert {tool: path for tool, path in inside["tools"].items() if path} == {}


async def test_helm_upgrade_to_another_value_fails_no_request(release: Release) -> None:
    """While `helm upgrade` re-runs the Jobs and rolls every Deployment (the config checksum
    changes), requests go to every Service, each on a new connection as a client arriving
    then would: the readiness probe, the preStop pause and the PodDisruptionBudget keep every
    one of them answered."""
    reads = {
        "intake": ("/readyz", {}),
        "feedback": ("/feedback/instruments", release.auth("therapist", "th-1")),
        "analytics": (f"/analytics/alerts?site_id={SITE}", release.auth("clinical_lead")),
        "notify": (f"/notify/deliveries?site_id={SITE}", release.auth("site_admin")),
    }
    before = {
        d["metadata"]["name"]: d["metadata"]["generation"]
        for d in objects(release.namespace, "deployments", "-l", INSTANCE)
    }
    done = asyncio.Event()
    outcomes: dict[str, list[str]] = {name: [] for name in SERVICES}

    async def keep_asking(name: str) -> None:
        path, headers = reads[name]
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            for _ in range(20_000):  # bounded; ends with the upgrade
                if done.is_set():
                    return
                try:
                    answer = await client.get(release.url(name, path), headers=headers)
                    outcomes[name].append(str(answer.status_code))
                except httpx.HTTPError as error:
                    outcomes[name].append(type(error).__name__)
                await asyncio.sleep(0.1)

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    askers = [asyncio.create_task(keep_asking(name)) for name in SERVICES]
    try:
        await asyncio.to_thread(
            release.helm, "upgrade", RELEASE, str(CHART), "--reuse-values",
            f"--set={UPGRADE_VALUE}", "--wait", "--wait-for-jobs", "--timeout", INSTALL_TIMEOUT,
        )  # fmt: skip
    finally:
        done.set()
        await asyncio.gather(*askers)
    for name, seen in outcomes.items():
        failed = [outcome for outcome in seen if outcome != "200"]
        print(f"{name}: {len(seen)} requests during the upgrade, {len(failed)} failed")
        assert seen and not failed, (name, len(seen), sorted(set(failed)))
    for deployment in objects(release.namespace, "deployments", "-l", INSTANCE):
        status = deployment["status"]
        assert deployment["metadata"]["generation"] > before[deployment["metadata"]["name"]]
        assert (
            status.get("updatedReplicas")
            == status.get("readyReplicas")
            == deployment["spec"]["replicas"]
        ), status
    # Every pod that serves now was started with the new value.
    for name in SERVICES:
        for pod in live_pods(release.namespace, name):
            level = kubectl(
                "-n", release.namespace, "exec", pod, "--", "printenv", "RAPPORT_LOG_LEVEL"
            )
            assert level.stdout.strip() == "warning", (name, pod)


def test_helm_uninstall_leaves_nothing_behind(release: Release) -> None:
    release.helm("uninstall", RELEASE, "--wait", timeout=900)
    # What Helm does not own: the hook Jobs and the hooks' ServiceAccount and NetworkPolicy
    # (deploy/README.md, "Uninstall", removes them with this command).
    left = sorted(
        f"{o['kind']}/{o['metadata']['name']}"
        for o in objects(
            release.namespace,
            RELEASED_KINDS,
            "-l",
            INSTANCE,
        )
    )
    print(f"left by helm uninstall: {[name for name in left if not name.startswith('Pod/')]}")
    assert all(
        kind.split("/")[0] in {"Job", "Pod", "ServiceAccount", "NetworkPolicy"} for kind in left
    ), left
    kubectl(
        "-n",
        release.namespace,
        "delete",
        "job,serviceaccount,networkpolicy",
        "-l",
        INSTANCE,
        "--wait",
        "--timeout=300s",
        timeout=400,
    )
    deadline = time.monotonic() + 300
    while objects(release.namespace, "pods"):
        assert time.monotonic() < deadline, objects(release.namespace, "pods")
        time.sleep(2)
    remaining = objects(
        release.namespace,
        f"{RELEASED_KINDS},leases.coordination.k8s.io",
    )
    names = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in remaining)
    # Only what Kubernetes puts in every namespace, and the Secret the test created.
    assert names == ["ConfigMap/kube-root-ca.crt", f"Secret/{SECRET}", "ServiceAccount/default"], (
        names
    )
    # And no container of the namespace is left in containerd (the kubelet removes the
    # stopped containers and sandboxes of deleted pods within a minute or two).
    if os.path.exists(CONTAINERD):
        deadline = time.monotonic() + 300
        while in_containerd := containers_of(release.namespace):
            assert time.monotonic() < deadline, f"left in containerd: {in_containerd}"
            time.sleep(5)


def containers_of(namespace: str) -> list[str]:
    label = f'labels."io.kubernetes.pod.namespace"=={namespace}'
    ctr = ("ctr", "--address", CONTAINERD, "--namespace", "k8s.io")
    return run(*ctr, "containers", "ls", "-q", label).stdout.split()
