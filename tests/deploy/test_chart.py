"""The Helm chart (deploy/helm/rapport), checked offline: `helm lint --strict`, `helm template`
with the default and the production-like values, every manifest against the Kubernetes JSON
schemas, the security settings and probes of every workload, secrets only by reference, the
values schema catching typos, and the KEDA/topic wiring agreeing with the code."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from rapport import topics
from tests.deploy.chart import (
    CHART,
    PRODUCTION_VALUES,
    SERVICES,
    VALUE_SETS,
    HelmRun,
    by_kind,
    one,
)

Rendered = Callable[[str], list[dict[str, Any]]]
VALUE_SET_NAMES = sorted(VALUE_SETS)
WORKLOAD_KINDS = ("Deployment", "Job", "Pod")
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
# Environment variables that carry secrets: only ever from a secretKeyRef.
SECRET_ENV = re.compile(r"(SECRET|PASSWORD|_KEY$|DATABASE_URL|REDIS_URL|TOKEN)")
HOOK = "helm.sh/hook"


def _kube_version() -> str:
    """The newest Kubernetes version kubernetes-validate has schemas for."""
    versions = {v for v in kubernetes_validate.utils.all_versions()}
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "Pod":
        return doc["spec"]
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


# -- lint and render ------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SET_NAMES)
def test_helm_lint_strict(helm_run: HelmRun, value_set: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in VALUE_SETS[value_set]:
        args += ["-f", str(path)]
    result = helm_run.run(*args)
    assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("value_set", VALUE_SET_NAMES)
def test_renders_every_component(rendered: Rendered, value_set: str) -> None:
    docs = rendered(value_set)
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        names = sorted(d["metadata"]["name"] for d in by_kind(docs, kind))
        assert names == sorted(f"rapport-{s}" for s in SERVICES), (kind, names)
    assert {d["metadata"]["name"] for d in by_kind(docs, "Job")} == {
        "rapport-migrate",
        "rapport-topics",
    }
    assert len(by_kind(docs, "ConfigMap")) == 1
    assert by_kind(docs, "NetworkPolicy")
    assert one(docs, "ServiceAccount", "rapport")["automountServiceAccountToken"] is False
    # The chart never creates a Secret: it only references existing ones.
    assert by_kind(docs, "Secret") == []
    if value_set == "production":
        assert len(by_kind(docs, "Ingress")) == 1
        assert len(by_kind(docs, "ServiceMonitor")) == 1
        assert len(by_kind(docs, "ScaledObject")) == 3
        assert [h["metadata"]["name"] for h in by_kind(docs, "HorizontalPodAutoscaler")] == [
            "rapport-intake"
        ]
    else:
        for kind in ("Ingress", "ServiceMonitor", "ScaledObject", "HorizontalPodAutoscaler"):
            assert by_kind(docs, kind) == [], kind


# -- Kubernetes schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SET_NAMES)
def test_manifests_validate_against_kubernetes_schemas(rendered: Rendered, value_set: str) -> None:
    version = _kube_version()
    checked = 0
    for doc in rendered(value_set):
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue  # CRDs: no schema shipped; checked structurally below
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(
                f"{doc['kind']}/{doc['metadata']['name']} is not valid for Kubernetes "
                f"{version}: {error.message} at {list(error.path)}"
            ) from None
        checked += 1
    assert checked >= 15


def test_oldest_supported_kubernetes_accepts_the_manifests(rendered: Rendered) -> None:
    """Chart.yaml says kubeVersion >=1.27: the production manifests validate there too."""
    kube = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    assert kube.startswith(">=1.27")
    for doc in rendered("production"):
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM_KINDS:
            kubernetes_validate.validate(doc, "1.27.0", strict=True)


def test_custom_resources_are_well_formed(rendered: Rendered) -> None:
    docs = rendered("production")
    prefix = "rapport."
    for scaled in by_kind(docs, "ScaledObject"):
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        spec = scaled["spec"]
        name = scaled["metadata"]["name"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "envSourceContainerName": name.removeprefix("rapport-"),
        }
        one(docs, "Deployment", name)  # the target exists
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        kafka = [t for t in spec["triggers"] if t["type"] == "kafka"]
        assert kafka
        for trigger in kafka:
            meta = trigger["metadata"]
            assert set(meta) >= {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"}
            assert all(isinstance(v, str) for v in meta.values()), meta
            assert meta["topic"].startswith(prefix)
            assert meta["tls"] == "enable" and meta["sasl"] == "scram_sha512"
            auth = trigger["authenticationRef"]["name"]
            one(docs, "TriggerAuthentication", auth)
        for trigger in spec["triggers"]:
            assert trigger["type"] in {"kafka", "cpu"}
            if trigger["type"] == "cpu":
                assert trigger["metricType"] == "Utilization"
                assert int(trigger["metadata"]["value"]) > 0
    auth = one(docs, "TriggerAuthentication", "rapport-kafka")["spec"]
    assert {e["parameter"] for e in auth["env"]} == {"username", "password"}
    assert [r["parameter"] for r in auth["secretTargetRef"]] == ["ca"]
    assert all(set(r) == {"parameter", "name", "key"} for r in auth["secretTargetRef"])

    monitor = one(docs, "ServiceMonitor", "rapport")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    for service in by_kind(docs, "Service"):
        labels = service["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector.items())
        assert any(p["name"] == "http" for p in service["spec"]["ports"])


# -- workloads: security, probes, resources, secrets ----------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SET_NAMES)
def test_every_workload_is_locked_down(rendered: Rendered, value_set: str) -> None:
    docs = rendered(value_set)
    found = workloads(docs)
    assert len(found) >= 6
    for doc in found:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = pod_spec(doc)
        assert spec["automountServiceAccountToken"] is False, where
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, where
        assert pod_security["runAsUser"] != 0, where
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), where
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], where
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security.get("privileged", False) is False, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] == "tmp", where
            assert container["image"].startswith(
                "rapport:" if value_set == "default" else "registry.example.org/rapport/rapport:"
            )


@pytest.mark.parametrize("value_set", VALUE_SET_NAMES)
def test_deployments_probe_and_shut_down_gracefully(rendered: Rendered, value_set: str) -> None:
    for deployment in by_kind(rendered(value_set), "Deployment"):
        where = deployment["metadata"]["name"]
        service = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = pod_spec(deployment)
        assert spec["terminationGracePeriodSeconds"] > 20, where
        (container,) = spec["containers"]
        assert container["args"] == ["serve", service], where
        assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        sleep = container["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep"
        assert spec["terminationGracePeriodSeconds"] > int(sleep[1]) + 20, where
        strategy = deployment["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0, where


@pytest.mark.parametrize("value_set", VALUE_SET_NAMES)
def test_secrets_only_by_reference(rendered: Rendered, value_set: str) -> None:
    docs = rendered(value_set)
    (config,) = by_kind(docs, "ConfigMap")
    assert not [k for k in config["data"] if SECRET_ENV.search(k)], config["data"]
    referenced: set[str] = set()
    for doc in workloads(docs):
        for container in pod_spec(doc)["containers"]:
            for env in container.get("env", []):
                if SECRET_ENV.search(env["name"]):
                    assert "value" not in env, (doc["metadata"]["name"], env)
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert ref["name"] and ref["key"]
                    referenced.add(env["name"])
    expected = {
        "RAPPORT_DATABASE_URL",
        "RAPPORT_MIGRATION_DATABASE_URL",
        "RAPPORT_REDIS_URL",
        "RAPPORT_JWT_SECRET",
        "RAPPORT_PSEUDONYM_KEY",
        "RAPPORT_ENCRYPTION_KEY",
    }
    if value_set == "production":
        expected |= {
            "RAPPORT_KAFKA_SASL_PASSWORD",
            "RAPPORT_NOTIFY_SMTP_PASSWORD",
            "RAPPORT_NOTIFY_SMS_PROVIDER_TOKEN",
        }
    assert referenced == expected


def test_production_secret_names_and_kafka_contract(rendered: Rendered) -> None:
    docs = rendered("production")
    data = by_kind(docs, "ConfigMap")[0]["data"]
    assert data["RAPPORT_ENVIRONMENT"] == "production"
    assert data["RAPPORT_HTTP_HOST"] == "0.0.0.0"
    assert data["RAPPORT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["RAPPORT_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert data["RAPPORT_KAFKA_SASL_USERNAME"] == "rapport"
    assert data["RAPPORT_KAFKA_CA_FILE"] == "/etc/rapport/kafka/ca/ca.crt"
    assert data["RAPPORT_TOPIC_PARTITIONS"] == "12"

    feedback = pod_spec(one(docs, "Deployment", "rapport-feedback"))
    env = {e["name"]: e for e in feedback["containers"][0]["env"]}
    assert env["RAPPORT_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "rapport-db-app",
        "key": "url",
    }
    assert env["RAPPORT_JWT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "rapport-keys"
    assert env["RAPPORT_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "rapport",
        "key": "password",
    }
    mounts = {m["name"]: m["mountPath"] for m in feedback["containers"][0]["volumeMounts"]}
    assert mounts["kafka-ca"] == "/etc/rapport/kafka/ca"
    volumes = {v["name"]: v for v in feedback["volumes"]}
    assert volumes["kafka-ca"]["secret"]["secretName"] == "events-cluster-ca-cert"
    assert volumes["kafka-ca"]["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]

    migrate = pod_spec(one(docs, "Job", "rapport-migrate"))["containers"][0]
    migrate_env = {e["name"]: e for e in migrate["env"]}
    # Alembic as the schema owner; the services' role (granted DML by `rapport migrate`) as
    # the services see it.
    assert migrate_env["RAPPORT_MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "rapport-db-owner",
        "key": "url",
    }
    assert (
        migrate_env["RAPPORT_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        == env["RAPPORT_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    )
    # The migration Job does not talk to Kafka: no Kafka credentials or certificates.
    assert not [n for n in migrate_env if n.startswith("RAPPORT_KAFKA_") and "BOOTSTRAP" not in n]
    assert [v["name"] for v in pod_spec(one(docs, "Job", "rapport-migrate"))["volumes"]] == ["tmp"]
    topics_job = pod_spec(one(docs, "Job", "rapport-topics"))["containers"][0]
    topics_env = {e["name"]: e for e in topics_job["env"]}
    assert topics_env["RAPPORT_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        "rapport"
    )
    assert topics_env["RAPPORT_TOPIC_RETENTION_MS"]["value"] == "604800000"
    assert topics_env["RAPPORT_TOPIC_DLQ_RETENTION_MS"]["value"] == "2592000000"
    assert topics_env["RAPPORT_TOPIC_MIN_INSYNC_REPLICAS"]["value"] == "2"
    assert "RAPPORT_JWT_SECRET" not in topics_env  # least privilege: Kafka only


# -- hooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SET_NAMES)
def test_migration_and_topic_jobs_are_pre_install_hooks(rendered: Rendered, value_set: str) -> None:
    docs = rendered(value_set)
    migrate = one(docs, "Job", "rapport-migrate")
    create = one(docs, "Job", "rapport-topics")
    for job in (migrate, create):
        annotations = job["metadata"]["annotations"]
        assert annotations[HOOK] == "pre-install,pre-upgrade"
        spec = pod_spec(job)
        assert spec["restartPolicy"] == "Never"
        # Hooks run before the release's ServiceAccount exists: theirs is a hook too, created first.
        account = one(docs, "ServiceAccount", spec["serviceAccountName"])
        assert account["metadata"]["annotations"][HOOK] == "pre-install,pre-upgrade"
        assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            annotations["helm.sh/hook-weight"]
        )
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["RAPPORT_TOPIC_PREFIX"] == "rapport."
    assert pod_spec(migrate)["containers"][0]["command"] == ["rapport", "migrate"]
    assert pod_spec(create)["containers"][0]["command"][:4] == [
        "python",
        "-m",
        "rapport.topics",
        "create",
    ]
    hooks_policy = one(docs, "NetworkPolicy", "rapport-hooks")
    assert hooks_policy["metadata"]["annotations"][HOOK] == "pre-install,pre-upgrade"


# -- networking -----------------------------------------------------------------------------


def test_ingress_routes_the_four_prefixes_with_tls(rendered: Rendered) -> None:
    (ingress,) = by_kind(rendered("production"), "Ingress")
    assert ingress["spec"]["tls"] == [
        {"secretName": "rapport-example-org-tls", "hosts": ["rapport.example.org"]}
    ]
    (rule,) = ingress["spec"]["rules"]
    routes = {
        p["path"]: (p["pathType"], p["backend"]["service"]["name"]) for p in rule["http"]["paths"]
    }
    assert routes == {f"/{s}": ("Prefix", f"rapport-{s}") for s in SERVICES}


@pytest.mark.parametrize("value_set", VALUE_SET_NAMES)
def test_network_policies_limit_traffic(rendered: Rendered, value_set: str) -> None:
    docs = rendered(value_set)
    main = one(docs, "NetworkPolicy", "rapport")["spec"]
    assert main["policyTypes"] == ["Ingress", "Egress"]
    selected = main["podSelector"]["matchExpressions"][0]["values"]
    assert sorted(selected) == sorted(SERVICES)
    (ingress,) = main["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": "http"}]
    assert ingress["from"], "ingress must name its sources"
    ports = {p["port"] for rule in main["egress"] for p in rule["ports"]}
    allowed = {53, 9092, 9093, 5432, 6379}
    assert ports <= allowed, ports
    notify = one(docs, "NetworkPolicy", "rapport-notify-webhooks")["spec"]
    assert notify["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "notify"
    assert [p["port"] for p in notify["egress"][0]["ports"]] == [443]
    if value_set == "production":  # the SMTP relay
        assert [p["port"] for p in notify["egress"][1]["ports"]] == [587]


# -- values schema and render-time guards ---------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("services.intake.replicaCont=2", "replicaCont"),
        ("services.feedback.keda.lagTreshold=10", "lagTreshold"),
        ("replicaCount=3", "replicaCount"),
        ("kafka.sasl.mechansim=PLAIN", "mechansim"),
        ("ingress.host=x.example.org", "host"),
        ("services.billing.enabled=true", "billing"),
        ("kafka.securityProtocol=TLS", "securityProtocol"),
        ("topics.partitions=0", "partitions"),
        ("environment=staging", "environment"),
        ("config.logLevel=verbose", "logLevel"),
    ],
)
def test_values_schema_rejects_typos_and_bad_values(
    helm_run: HelmRun, setting: str, complaint: str
) -> None:
    error = helm_run.template_fails(sets=[setting])
    assert "schema" in error and complaint in error, error


def test_lint_fails_on_a_typo_too(helm_run: HelmRun) -> None:
    result = helm_run.run(
        "lint", "--strict", str(CHART), "--set", "services.intake.replicaCont=2", check=False
    )
    assert result.returncode != 0
    assert "replicaCont" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (["services.feedback.keda.enabled=true", "services.feedback.keda.maxReplicaCount=7"],
         "exceeds topics.partitions"),
        (["services.intake.keda.enabled=true", "services.intake.keda.lagThreshold=-1"],
         "minimum"),
        (["services.notify.keda.enabled=true", "services.notify.autoscaling.enabled=true"],
         "not both"),
        (["topics.minInsyncReplicas=4"], "minInsyncReplicas exceeds"),
        (["defaults.terminationGracePeriodSeconds=22"], "terminationGracePeriodSeconds"),
        (["kafka.securityProtocol=SASL_SSL"], "kafka.sasl.existingSecret"),
        (["ingress.enabled=true"], "ingress.hosts"),
    ],
)  # fmt: skip
def test_render_time_guards(helm_run: HelmRun, settings: list[str], complaint: str) -> None:
    assert complaint in helm_run.template_fails(sets=settings)


# -- the chart agrees with the code ---------------------------------------------------------


def test_keda_scales_each_consumer_on_its_own_group_and_topics(helm_run: HelmRun) -> None:
    prefix = "acme.prod."
    sets = [f"topics.prefix={prefix}", "topics.partitions=4"]
    for service in ("intake", "feedback", "analytics", "notify"):
        sets += [
            f"services.{service}.keda.enabled=true",
            f"services.{service}.keda.maxReplicaCount=4",
        ]
    docs = helm_run.template(sets=sets)
    expected = topics.consumers(prefix)
    scaled = {
        d["metadata"]["name"].removeprefix("rapport-"): d for d in by_kind(docs, "ScaledObject")
    }
    consuming = {name for name, info in expected.items() if info["topics"]}
    assert set(scaled) == consuming
    for service, doc in scaled.items():
        kafka = [t["metadata"] for t in doc["spec"]["triggers"] if t["type"] == "kafka"]
        assert {m["consumerGroup"] for m in kafka} == {expected[service]["group"]}
        assert sorted(m["topic"] for m in kafka) == expected[service]["topics"]
        assert doc["spec"]["maxReplicaCount"] <= 4
        assert all(m["offsetResetPolicy"] == "earliest" for m in kafka)
    # The default (PLAINTEXT) install needs no TriggerAuthentication.
    assert by_kind(docs, "TriggerAuthentication") == []
    assert by_kind(docs, "HorizontalPodAutoscaler") == []
    for name in consuming:  # replicas are KEDA's: the Deployment must not fight it
        assert "replicas" not in one(docs, "Deployment", f"rapport-{name}")["spec"]


def test_chart_knows_every_service() -> None:
    import services

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert tuple(values["services"]) == tuple(services.NAMES) == SERVICES


def test_notes_tell_the_operator_what_to_check(helm_run: HelmRun, tmp_path: Path) -> None:
    """NOTES.txt rendered (through a throwaway copy of the chart, as `helm template` skips it)."""
    chart = tmp_path / "rapport"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "zz-notes.yaml").write_text(
        "notes: |\n" + "".join(f"  {line}\n" for line in notes.splitlines())
    )
    output = helm_run.run(
        *helm_run.template_args([PRODUCTION_VALUES], chart=chart),
        "--show-only",
        "templates/zz-notes.yaml",
    ).stdout
    text = yaml.safe_load(output)["notes"]
    secrets = (
        "get secret rapport-keys rapport-db-app rapport-redis rapport-db-owner rapport "
        "rapport-sms rapport-smtp events-cluster-ca-cert\n"
    )
    assert secrets in text, text
    assert "logs job/rapport-migrate" in text and "logs job/rapport-topics" in text
    assert "helm test rapport" in text
    assert "https://rapport.example.org/intake" in text
    assert "analytics, feedback, notify (at most 12 replicas" in text
    assert "WARNING" not in text


def test_topics_job_can_use_its_own_kafka_principal(helm_run: HelmRun) -> None:
    docs = helm_run.template(
        [PRODUCTION_VALUES],
        ["topics.job.sasl.existingSecret=rapport-admin", "topics.job.sasl.username=rapport-admin"],
    )
    job_env = {
        e["name"]: e for e in pod_spec(one(docs, "Job", "rapport-topics"))["containers"][0]["env"]
    }
    assert job_env["RAPPORT_KAFKA_SASL_USERNAME"]["value"] == "rapport-admin"
    assert (
        job_env["RAPPORT_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        == "rapport-admin"
    )
    # The services keep theirs.
    data = by_kind(docs, "ConfigMap")[0]["data"]
    assert data["RAPPORT_KAFKA_SASL_USERNAME"] == "rapport"
    service_env = {
        e["name"]: e
        for e in pod_spec(one(docs, "Deployment", "rapport-notify"))["containers"][0]["env"]
    }
    assert (
        service_env["RAPPORT_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "rapport"
    )


def test_notify_gets_its_channel_settings_secrets_and_policy_file(rendered: Rendered) -> None:
    spec = pod_spec(one(rendered("production"), "Deployment", "rapport-notify"))
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RAPPORT_NOTIFY_PUBLIC_BASE_URL"]["value"] == "https://rapport.example.org"
    assert env["RAPPORT_NOTIFY_SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "rapport-smtp",
        "key": "password",
    }
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["notify-policy"]["mountPath"] == "/etc/rapport/notify"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["notify-policy"]["configMap"]["name"] == "rapport-notify-policy"
    # Only notify gets them.
    other = pod_spec(one(rendered("production"), "Deployment", "rapport-intake"))
    assert "notify-policy" not in {v["name"] for v in other["volumes"]}


@pytest.mark.parametrize(
    "sets",
    [
        ["services.notify.enabled=false", "services.analytics.enabled=false"],
        ["networkPolicy.enabled=false", "serviceAccount.create=false", "tests.enabled=false"],
        ["migrations.enabled=false", "topics.job.enabled=false", "image.digest=sha256:" + "a" * 64],
        ["kafka.securityProtocol=SSL", "kafka.tls.caSecret=ca", "kafka.tls.clientSecret=client",
         "services.notify.keda.enabled=true"],
        ["kafka.securityProtocol=SASL_PLAINTEXT", "kafka.sasl.existingSecret=k",
         "kafka.sasl.usernameKey=user", "kafka.sasl.mechanism=PLAIN",
         "services.feedback.keda.enabled=true", "topics.retentionMs=null"],
        ["services.intake.autoscaling.enabled=true", "defaults.spreadAcrossNodes=false",
         "services.intake.pdb.minAvailable=1", "fullnameOverride=clinic"],
    ],
)  # fmt: skip
def test_optional_switches_render_valid_manifests(helm_run: HelmRun, sets: list[str]) -> None:
    docs = helm_run.template(sets=sets)
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM_KINDS:
            kubernetes_validate.validate(doc, _kube_version(), strict=True)
    for doc in workloads(docs):
        spec = pod_spec(doc)
        names = [v["name"] for v in spec["volumes"]]
        for container in spec["containers"]:
            mounted = [m["name"] for m in container["volumeMounts"]]
            assert set(mounted) <= set(names), (doc["metadata"]["name"], mounted, names)
    if "kafka.tls.clientSecret=client" in sets:
        auth = by_kind(docs, "TriggerAuthentication")[0]["spec"]
        assert [r["parameter"] for r in auth["secretTargetRef"]] == ["ca", "cert", "key"]
        assert "env" not in auth
        data = by_kind(docs, "ConfigMap")[0]["data"]
        assert data["RAPPORT_KAFKA_CERT_FILE"] == "/etc/rapport/kafka/client/tls.crt"
    if "kafka.sasl.usernameKey=user" in sets:
        env = {
            e["name"]: e
            for e in pod_spec(one(docs, "Deployment", "rapport-feedback"))["containers"][0]["env"]
        }
        assert env["RAPPORT_KAFKA_SASL_USERNAME"]["valueFrom"]["secretKeyRef"] == {
            "name": "k",
            "key": "user",
        }
        (scaled,) = by_kind(docs, "ScaledObject")
        assert scaled["spec"]["triggers"][0]["metadata"]["sasl"] == "plaintext"
        assert "tls" not in scaled["spec"]["triggers"][0]["metadata"]


def test_chart_consumer_map_is_generated_from_the_code() -> None:
    """files/consumers.yaml (which topics KEDA scales each service on) matches the code."""
    current = (CHART / "files" / "consumers.yaml").read_text()
    assert current == topics.consumers_yaml(), (
        "deploy/helm/rapport/files/consumers.yaml is stale: run "
        "`python -m rapport.topics consumers > deploy/helm/rapport/files/consumers.yaml`"
    )
