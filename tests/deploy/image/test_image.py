"""`make image-test`: the image `make image` built, run the way the Helm chart runs it.

The chart is rendered with `helm template` for this machine's Kafka, PostgreSQL and Redis; its
topics and migration Jobs and its four Deployments run as podman containers with the rendered
command, environment (ConfigMap and Secret references resolved), user, read-only root, dropped
capabilities and /tmp volume (tests/deploy/image/pods.py), on a fresh database and topic
prefix. Then: the probes and /metrics of every service, the chart's own `helm test` pod, the
end-to-end flow through the containers to a Standard Webhooks receiver on the host, what a
process inside the container can and cannot do, and a graceful stop.

Collected only when RAPPORT_IMAGE names the image (tests/deploy/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from shared.auth import mint_token
from shared.settings import Settings, load_settings
from tests.deploy.chart import SERVICES, HelmRun, by_kind
from tests.deploy.flow import SITE, end_to_end_flow
from tests.deploy.image.pods import LABEL, Container, PodTemplate, podman, remove_containers
from tests.support.infra import Infra, app_url, plain_dsn
from tests.support.receiver import WebhookReceiver, _free_port
from tests.support.topics import delete_topics, topics_of
from tests.support.waiting import eventually

IMAGE = os.environ.get("RAPPORT_IMAGE", "")
SECRET = "rapport-secrets"  # the chart's secrets.existingSecret
KEYS = {
    name: f"{name}-of-the-image-test-0123456789abcdef"
    for name in ("jwt-secret", "pseudonym-key", "encryption-key")
}
# Generous: the machine may be shared and slow. The chart's own budgets are printed, not
# asserted (no wall-clock asserts).
START_TIMEOUT = 600.0
# What the image must not contain: compilers and build tools, package managers and pip, and
# the local stack's tooling (rapport/stack/ installs and runs these in development).
TOOLS = (
    "gcc", "cc", "c++", "g++", "clang", "make", "ld", "as", "cargo", "rustc",
    "apt", "apt-get", "aptitude", "pip", "pip3", "pip3.11", "easy_install",
    "mvn", "java", "javac", "pg_ctl", "initdb", "postgres", "redis-server", "kafka-server-start.sh",
)  # fmt: skip
# Run inside a service container: who it runs as, what it may write, what it has.
INSIDE = """
import errno, importlib.util, json, os, shutil, sys
status = dict(
    line.rstrip("\\n").split(":\\t", 1) for line in open("/proc/self/status") if ":\\t" in line
)
writes = {}
for directory in ("/", "/app", "/opt/rapport", "/opt/rapport/lib", "/etc", "/usr", "/var/tmp",
                  "/tmp"):
    path = os.path.join(directory, ".rapport-write-check")
    try:
        with open(path, "w") as handle:
            handle.write("x")
        os.remove(path)
        writes[directory] = "written"
    except OSError as error:
        writes[directory] = errno.errorcode.get(error.errno, str(error.errno))
root = [line.split() for line in open("/proc/self/mountinfo") if line.split()[4] == "/"]
print(json.dumps({
    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "caps": {k: status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    "no_new_privs": status["NoNewPrivs"], "root_mount_options": root[-1][5].split(","),
    "writes": writes,
    "tools": {tool: shutil.which(tool) for tool in sys.argv[1:]},
    "modules": {m: importlib.util.find_spec(m) is not None
                for m in ("pip", "setuptools", "rapport.stack", "rapport.cli", "services.notify")},
}))
"""


@dataclass
class Release:
    """The chart's workloads, running as containers of the image."""

    prefix: str
    label: str  # `podman run --label` of every container of this run
    owner_url: str  # the fresh database, as its owner (the migration Job's role)
    settings: Settings  # for minting staff tokens with the release's JWT secret
    manifests: list[dict[str, Any]]
    jobs: dict[str, str]  # Job name -> its output
    containers: dict[str, Container] = field(default_factory=dict)
    templates: dict[str, PodTemplate] = field(default_factory=dict)

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.containers[service].port}{path}"

    def auth(self, role: str, sub: str = "staff-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.settings, sub, role, [SITE])}"}


def chart_values(infra: Infra, prefix: str) -> list[str]:
    """--set values of the release: this machine's stack, one broker, the test's image."""
    repository, _, tag = IMAGE.rpartition(":")
    if "/" in tag or not repository:
        repository, tag = IMAGE, "latest"
    return [
        f"image.repository={repository}",
        f"image.tag={tag}",
        "image.pullPolicy=Never",
        f"kafka.bootstrap={infra.kafka_bootstrap}",
        f"topics.prefix={prefix}",
        "topics.partitions=3",
        "topics.replication=1",
        "topics.minInsyncReplicas=1",
        # The webhook receiver of the test listens on the host's loopback.
        "config.allowPrivateWebhooks=true",
        # The schema owner migrates; the services connect as the application role.
        "migrations.databaseUrl.key=migration-database-url",
    ]


def run_job(template: PodTemplate, env: dict[str, str], name: str, label: str) -> str:
    deadline = float(template.pod.get("activeDeadlineSeconds") or 900)
    result = podman(
        "run", "--rm", "--no-healthcheck", *template.run_args(env, name, [label]),
        timeout=deadline + 60, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"Job {template.name} failed ({result.returncode}):\n{output}"
    return output


async def answers(url: str, status: int = 200) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(url)).status_code == status
    except httpx.HTTPError:
        return False


async def start_service(
    release: Release, name: str, template: PodTemplate, env: dict[str, str], label: str
) -> None:
    """`podman run -d` one Deployment's container; wait for its startup probe, then readiness."""
    port = _free_port()
    container = Container(f"{release.prefix}{name}", port)
    podman(
        "run", "-d", "--no-healthcheck",
        *template.run_args({**env, "RAPPORT_HTTP_PORT": str(port)}, container.name, [label]),
    )  # fmt: skip
    release.containers[name] = container
    release.templates[name] = template
    started = time.monotonic()

    async def probe(kind: str) -> bool:
        if not container.running():
            raise AssertionError(f"{name} exited:\n{container.logs()[-4000:]}")
        path = template.probe(kind)["httpGet"]["path"]
        return await answers(f"http://127.0.0.1:{port}{path}")

    for kind in ("startup", "readiness"):
        await eventually(
            lambda kind=kind: probe(kind),  # type: ignore[misc]
            timeout=START_TIMEOUT,
            interval=0.5,
            what=f"{name}'s {kind} probe",
        )
    budget = template.probe("startup")
    allowed = budget["periodSeconds"] * budget["failureThreshold"]
    print(
        f"{name}: ready after {time.monotonic() - started:.0f} s (startup probe allows {allowed} s)"
    )


async def create_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(plain_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(plain_dsn(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def image() -> str:
    assert IMAGE, "RAPPORT_IMAGE names the image to test (make image-test sets it)"
    found = podman("image", "exists", IMAGE, check=False)
    assert found.returncode == 0, f"{IMAGE} is not built here: run `make image` first"
    return IMAGE


@pytest.fixture(scope="module")
async def release(infra: Infra, helm_run: HelmRun, image: str) -> AsyncIterator[Release]:
    suffix = uuid.uuid4().hex[:10]
    prefix, database = f"img{suffix}.", f"img_{suffix}"
    label = f"{LABEL}.run={suffix}"
    owner_url = make_url(infra.database_url).set(database=database)
    owner = owner_url.render_as_string(hide_password=False)
    await create_database(infra.database_url, database)
    try:
        manifests = helm_run.template(sets=chart_values(infra, prefix))
        config_maps = {c["metadata"]["name"]: c["data"] for c in by_kind(manifests, "ConfigMap")}
        secrets = {
            SECRET: {
                "database-url": app_url(owner),
                "migration-database-url": owner,
                "redis-url": infra.redis_url,
                **KEYS,
            }
        }
        settings = load_settings(
            environment="production",
            database_url=app_url(owner),
            jwt_secret=KEYS["jwt-secret"],
            pseudonym_key=KEYS["pseudonym-key"],
            encryption_key=KEYS["encryption-key"],
        )
        # The hook Jobs in their hook-weight order (topics, then migrate), as `helm install`.
        jobs = sorted(
            by_kind(manifests, "Job"),
            key=lambda job: int(job["metadata"]["annotations"]["helm.sh/hook-weight"]),
        )
        outputs: dict[str, str] = {}
        for job in jobs:
            template = PodTemplate.of(job)
            name = job["metadata"]["labels"]["app.kubernetes.io/component"]
            env = template.env(config_maps, secrets)
            outputs[name] = await asyncio.to_thread(
                run_job, template, env, f"{prefix}job-{name}", label
            )
        release = Release(prefix, label, owner, settings, manifests, outputs)
        deployments = {
            d["metadata"]["labels"]["app.kubernetes.io/component"]: PodTemplate.of(d)
            for d in by_kind(manifests, "Deployment")
        }
        assert sorted(deployments) == sorted(SERVICES)
        await asyncio.gather(
            *(
                start_service(release, name, template, template.env(config_maps, secrets), label)
                for name, template in deployments.items()
            )
        )
        yield release
    finally:
        await asyncio.to_thread(remove_containers, label)
        await drop_database(infra.database_url, database)
        await delete_topics(infra.kafka_bootstrap, prefix)


def inspect(image: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(podman("image", "inspect", image).stdout)
    return found[0]


def test_the_image_is_configured_as_the_chart_expects(image: str) -> None:
    found = inspect(image)
    config = found["Config"]
    assert config["User"] == "10001:10001", "a numeric non-root user (runAsNonRoot checks it)"
    assert config["Entrypoint"] == ["rapport"] and config["Cmd"] == ["serve", "intake"]
    assert config["StopSignal"] == "SIGTERM"
    # Kept by building in the Docker format (the OCI image format has no HEALTHCHECK).
    assert found["Healthcheck"]["Test"][:3] == ["CMD", "python", "-c"]


async def test_jobs_created_the_topics_and_migrated_the_database(
    release: Release, infra: Infra
) -> None:
    topics = await topics_of(infra.kafka_bootstrap, release.prefix)
    assert f"{release.prefix}match.confirmed.v1" in topics, topics
    assert any(t.endswith(".dlq") for t in topics), topics
    owner = await asyncpg.connect(plain_dsn(release.owner_url))
    try:
        tables = {r["tablename"] for r in await owner.fetch("SELECT tablename FROM pg_tables")}
        # Row-level security on, and the application role may use the tables (the grant step).
        granted = await owner.fetchval(
            "SELECT has_table_privilege('rapport_app', 'intake_outbox', 'INSERT')"
        )
    finally:
        await owner.close()
    for service in SERVICES:
        assert f"{service}_outbox" in tables, sorted(tables)
    assert granted


async def test_probes_metrics_and_the_helm_test_pod_answer_on_every_service(
    release: Release,
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for name in SERVICES:
            template = release.templates[name]
            for kind in ("startup", "liveness", "readiness"):
                path = template.probe(kind)["httpGet"]["path"]
                answer = await client.get(release.url(name, path))
                assert answer.status_code == 200, (name, kind, path, answer.text)
            ready = (await client.get(release.url(name, "/readyz"))).json()["checks"]
            assert ready["kafka"] == "ok" and ready["redis"] == "ok", (name, ready)
            assert ready[f"{name}.database"] == "ok", (name, ready)
            metrics = await client.get(release.url(name, "/metrics"))
            assert metrics.status_code == 200 and "# TYPE" in metrics.text, name
            assert "python_info" in metrics.text and "http_" in metrics.text, name
    # The chart's `helm test` pod (its own command, against these containers' /readyz).
    (test_pod,) = [
        p
        for p in by_kind(release.manifests, "Pod")
        if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]
    template = PodTemplate.of(test_pod)
    urls = [release.url(name, "/readyz") for name in SERVICES]
    template.container["command"] = [*template.container["command"][:3], *urls]
    output = await asyncio.to_thread(
        run_job, template, {}, f"{release.prefix}helm-test", release.label
    )
    assert output.count(" 200 ") == len(SERVICES), output


async def test_end_to_end_flow_through_the_containers(release: Release) -> None:
    """intake → match.confirmed → feedback → analytics alerts → notify → verified webhooks."""
    await end_to_end_flow(release, WebhookReceiver())


def test_inside_a_container_non_root_read_only_root_and_no_tooling(release: Release) -> None:
    container = release.containers["intake"]
    result = container.exec("python", "-c", INSIDE, *TOOLS)
    assert result.returncode == 0, result.stderr
    inside = json.loads(result.stdout)
    assert inside["uid"] == inside["euid"] == 10001 and inside["gid"] == 10001, inside
    assert 0 not in inside["groups"], inside["groups"]
    assert set(inside["caps"].values()) == {"0000000000000000"}, inside["caps"]
    assert inside["no_new_privs"] == "1"
    assert "ro" in inside["root_mount_options"], inside["root_mount_options"]
    # A write anywhere but /tmp fails because the root filesystem is read-only (EROFS), not
    # merely because of file permissions; /tmp is the chart's emptyDir.
    writes = inside["writes"]
    assert writes.pop("/tmp") == "written"
    assert set(writes.values()) == {"EROFS"}, writes
    assert {tool: path for tool, path in inside["tools"].items() if path} == {}
    modules = inside["modules"]
    assert modules == {
        "pip": False,
        "setuptools": False,
        "rapport.stack": False,
        "rapport.cli": True,
        "services.notify": True,
    }
    stack = container.exec("rapport", "stack", "up")
    assert stack.returncode == 2 and "not part of this installation" in stack.stderr, stack
    # The image's HEALTHCHECK command (for plain Docker/podman) passes on this container.
    check = inspect(IMAGE)["Healthcheck"]["Test"][1:]
    healthy = container.exec(*check)  # the container's RAPPORT_HTTP_PORT is its port
    assert healthy.returncode == 0, healthy.stderr


def test_containers_stop_gracefully_and_never_hit_the_read_only_root(release: Release) -> None:
    """Last: stops the release. The preStop hook's command exists in the image, SIGTERM ends
    each service cleanly, and no log line shows a write refused by the read-only root."""
    for name, container in release.containers.items():
        pre_stop = release.templates[name].container["lifecycle"]["preStop"]["exec"]["command"]
        assert container.exec(pre_stop[0], "0").returncode == 0, pre_stop
        grace = release.templates[name].pod["terminationGracePeriodSeconds"]
        podman("stop", "-t", str(grace), container.name, timeout=grace + 60)
        logs = container.logs()
        assert '"services stopped"' in logs, (name, logs[-3000:])
        for refused in ("Read-only file system", "Permission denied", "Traceback"):
            assert refused not in logs, (name, refused, logs[-3000:])
