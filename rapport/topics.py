"""``python -m rapport.topics``: Rapport's Kafka topics, computed from the code and created
idempotently.

One topic per registered event type and version (``<prefix><name>.v<version>``) plus
``<topic>.dlq`` for every topic a service consumes::

    python -m rapport.topics list                 # the names, one a line
    python -m rapport.topics list --json          # names + each service's consumer group/topics
    python -m rapport.topics create               # create the missing ones; keep the rest
    python -m rapport.topics consumers            # the Helm chart's files/consumers.yaml

``create`` never deletes, never alters an existing topic and never adds partitions (that would
move keys to other partitions and break per-episode ordering); it prints ``created`` or
``kept`` for each topic and warns when a kept topic has fewer partitions than asked for. Run it
before the services start (the Helm chart's pre-install/pre-upgrade Job does), so services whose
Kafka principal may not create topics find them all in place.

Every option falls back to an environment variable, so the same container environment as the
services works:

==========================  ====================================  ======================
option                      variable                              default
==========================  ====================================  ======================
``--bootstrap``             ``RAPPORT_KAFKA_BOOTSTRAP``           ``127.0.0.1:9092``
``--prefix``                ``RAPPORT_TOPIC_PREFIX``              ``rapport.``
``--partitions``            ``RAPPORT_TOPIC_PARTITIONS``          6
``--replication``           ``RAPPORT_TOPIC_REPLICATION``         1
``--retention-ms``          ``RAPPORT_TOPIC_RETENTION_MS``        the broker's default
``--dlq-retention-ms``      ``RAPPORT_TOPIC_DLQ_RETENTION_MS``    as ``--retention-ms``
``--min-insync-replicas``   ``RAPPORT_TOPIC_MIN_INSYNC_REPLICAS`` the broker's default
``--wait``                  (seconds to wait for Kafka)           60
==========================  ====================================  ======================

Kafka security (the contract the Helm chart renders; see ``deploy/README.md``):
``RAPPORT_KAFKA_SECURITY_PROTOCOL`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
``RAPPORT_KAFKA_SASL_MECHANISM`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
``RAPPORT_KAFKA_SASL_USERNAME``, ``RAPPORT_KAFKA_SASL_PASSWORD``, ``RAPPORT_KAFKA_CA_FILE``,
``RAPPORT_KAFKA_CERT_FILE``, ``RAPPORT_KAFKA_KEY_FILE``, ``RAPPORT_KAFKA_KEY_PASSWORD``,
``RAPPORT_KAFKA_SSL_CHECK_HOSTNAME`` (true/false, default true).

Exit status: 0 done, 1 Kafka refused or failed, 2 bad option or setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_PREFIX = "rapport."
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_PREFIX = re.compile(r"[A-Za-z0-9._\-]*")
_TOPIC_ALREADY_EXISTS = 36


class TopicsError(Exception):
    """A bad option or setting; ``str()`` is the one line to show."""


# -- what exists ----------------------------------------------------------------------------


def consumers(prefix: str = DEFAULT_PREFIX) -> dict[str, dict[str, Any]]:
    """Each service's Kafka consumer group and the topics it consumes (from the code)."""
    import services

    result: dict[str, dict[str, Any]] = {}
    for definition in services.definitions():
        topics = sorted({prefix + s.event_type.topic_name for s in definition.subscriptions})
        result[definition.name] = {"group": f"{prefix}{definition.name}", "topics": topics}
    return result


def topic_names(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Every topic Rapport uses: all registered event types, everything a service produces or
    consumes, and ``<topic>.dlq`` for every consumed topic. Sorted."""
    import services
    from shared.contracts import REGISTRY

    names = {prefix + event_type.topic_name for event_type in REGISTRY}
    consumed: set[str] = set()
    for definition in services.definitions():
        names.update(prefix + t.topic_name for t in definition.produces)
        consumed.update(prefix + s.event_type.topic_name for s in definition.subscriptions)
    return sorted(names | consumed | {f"{t}.dlq" for t in consumed})


CONSUMERS_HEADER = """\
# Which topics each service consumes (without the topic prefix): the Helm chart scales a
# service on the lag of exactly these topics. Generated from the code; do not edit:
#   python -m rapport.topics consumers > deploy/helm/rapport/files/consumers.yaml
# (tests/deploy fails when this file and the code disagree.)
"""


def consumers_yaml() -> str:
    """:func:`consumers` without the prefix, as the YAML the Helm chart reads."""
    lines = [CONSUMERS_HEADER.rstrip("\n")]
    for service, info in consumers("").items():
        if info["topics"]:
            lines.append(f"{service}:")
            lines.extend(f"  - {topic}" for topic in info["topics"])
        else:
            lines.append(f"{service}: []")
    return "\n".join(lines) + "\n"


# -- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    bootstrap: str
    prefix: str
    partitions: int
    replication: int
    retention_ms: int | None
    dlq_retention_ms: int | None
    min_insync_replicas: int | None
    wait_seconds: float

    def configs(self, topic: str) -> dict[str, str]:
        configs: dict[str, str] = {}
        retention = self.dlq_retention_ms if topic.endswith(".dlq") else self.retention_ms
        if retention is not None:
            configs["retention.ms"] = str(retention)
        if self.min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(self.min_insync_replicas)
        return configs


_MAX_MS = 2**63 - 1
# option attribute -> (variable, lowest, highest)
_INTEGERS: dict[str, tuple[str, int, int]] = {
    "partitions": ("RAPPORT_TOPIC_PARTITIONS", 1, 1000),
    "replication": ("RAPPORT_TOPIC_REPLICATION", 1, 10),
    "retention_ms": ("RAPPORT_TOPIC_RETENTION_MS", -1, _MAX_MS),
    "dlq_retention_ms": ("RAPPORT_TOPIC_DLQ_RETENTION_MS", -1, _MAX_MS),
    "min_insync_replicas": ("RAPPORT_TOPIC_MIN_INSYNC_REPLICAS", 1, 10),
}


def _integer(args: argparse.Namespace, env: Mapping[str, str], attribute: str) -> int | None:
    variable, low, high = _INTEGERS[attribute]
    option = getattr(args, attribute)
    raw = option if option is not None else env.get(variable)
    if raw is None or str(raw).strip() == "":
        return None
    where = f"--{attribute.replace('_', '-')} ({variable})"
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise TopicsError(f"{where}: expected an integer from {low} to {high}, got {raw!r}")
    return value


def make_plan(args: argparse.Namespace, env: Mapping[str, str]) -> Plan:
    bootstrap = args.bootstrap or env.get("RAPPORT_KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP
    prefix = args.prefix if args.prefix is not None else env.get("RAPPORT_TOPIC_PREFIX")
    prefix = _checked_prefix(DEFAULT_PREFIX if prefix is None else prefix)
    partitions = _integer(args, env, "partitions") or 6
    replication = _integer(args, env, "replication") or 1
    retention = _integer(args, env, "retention_ms")
    dlq_retention = _integer(args, env, "dlq_retention_ms")
    min_isr = _integer(args, env, "min_insync_replicas")
    if min_isr is not None and min_isr > replication:
        raise TopicsError(
            f"--min-insync-replicas ({min_isr}) must not exceed --replication ({replication})"
        )
    return Plan(
        bootstrap=bootstrap.strip(),
        prefix=prefix,
        partitions=partitions,
        replication=replication,
        retention_ms=retention,
        dlq_retention_ms=dlq_retention if dlq_retention is not None else retention,
        min_insync_replicas=min_isr,
        wait_seconds=float(args.wait),
    )


def _checked_prefix(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise TopicsError(
            "--prefix (RAPPORT_TOPIC_PREFIX): expected letters, digits, '.', '_' or '-', "
            f"got {prefix!r}"
        )
    return prefix


def kafka_security(env: Mapping[str, str]) -> dict[str, Any]:
    """aiokafka client keyword arguments for the ``RAPPORT_KAFKA_*`` security settings."""
    protocol = (env.get("RAPPORT_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").strip().upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise TopicsError(
            f"RAPPORT_KAFKA_SECURITY_PROTOCOL: expected one of {', '.join(SECURITY_PROTOCOLS)}, "
            f"got {protocol!r}"
        )
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        files = {
            "cafile": env.get("RAPPORT_KAFKA_CA_FILE") or None,
            "certfile": env.get("RAPPORT_KAFKA_CERT_FILE") or None,
            "keyfile": env.get("RAPPORT_KAFKA_KEY_FILE") or None,
        }
        for option, path in files.items():
            if path is not None and not os.path.isfile(path):
                raise TopicsError(f"Kafka TLS {option}: no such file {path!r}")
        if (files["certfile"] is None) != (files["keyfile"] is None):
            raise TopicsError(
                "RAPPORT_KAFKA_CERT_FILE and RAPPORT_KAFKA_KEY_FILE go together (mutual TLS)"
            )
        context = create_ssl_context(
            **files, password=env.get("RAPPORT_KAFKA_KEY_PASSWORD") or None
        )
        check = (env.get("RAPPORT_KAFKA_SSL_CHECK_HOSTNAME") or "true").strip().lower()
        context.check_hostname = check not in ("false", "0", "no")
        kwargs["ssl_context"] = context
    if protocol.startswith("SASL_"):
        mechanism = (env.get("RAPPORT_KAFKA_SASL_MECHANISM") or "").strip().upper()
        if mechanism not in SASL_MECHANISMS:
            raise TopicsError(
                f"RAPPORT_KAFKA_SASL_MECHANISM: expected one of {', '.join(SASL_MECHANISMS)}, "
                f"got {mechanism!r}"
            )
        username = env.get("RAPPORT_KAFKA_SASL_USERNAME") or ""
        password = env.get("RAPPORT_KAFKA_SASL_PASSWORD") or ""
        if not username or not password:
            raise TopicsError(
                "RAPPORT_KAFKA_SASL_USERNAME and RAPPORT_KAFKA_SASL_PASSWORD are required "
                f"with {protocol}"
            )
        kwargs.update(
            sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password
        )
    return kwargs


# -- creating -------------------------------------------------------------------------------


async def _admin(plan: Plan, security: Mapping[str, Any]) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + plan.wait_seconds
    delay = 1.0
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=plan.bootstrap,
            client_id="rapport-topics",
            request_timeout_ms=30_000,
            **security,
        )
        try:
            await admin.start()
            return admin
        except Exception as error:
            await admin.close()
            if time.monotonic() + delay > deadline:
                raise
            print(f"waiting for Kafka at {plan.bootstrap}: {type(error).__name__}", file=sys.stderr)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def ensure(plan: Plan, security: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Create the missing topics; return ``(created, kept)``. Raises on any Kafka error other
    than "already exists" (a concurrent run is fine)."""
    from aiokafka.admin import NewTopic
    from aiokafka.errors import for_code

    wanted = topic_names(plan.prefix)
    admin = await _admin(plan, security)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        created: list[str] = []
        raced: set[str] = set()
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=topic,
                        num_partitions=plan.partitions,
                        replication_factor=plan.replication,
                        topic_configs=plan.configs(topic),
                    )
                    for topic in missing
                ]
            )
            failures: dict[str, list[str]] = {}
            for topic, code, *rest in response.topic_errors:
                if code == 0:
                    continue
                if code == _TOPIC_ALREADY_EXISTS:
                    raced.add(topic)
                    continue
                message = rest[0] if rest and rest[0] else for_code(code).__name__
                failures.setdefault(message, []).append(topic)
            if failures:
                raise RuntimeError(
                    "; ".join(
                        f"could not create {len(topics)} topic(s) ({', '.join(topics[:3])}"
                        f"{', …' if len(topics) > 3 else ''}): {message}"
                        for message, topics in failures.items()
                    )
                )
            created = [t for t in missing if t not in raced]
        kept = sorted((set(wanted) & existing) | raced)
        for topic in created:
            settings = ", ".join(f"{k}={v}" for k, v in plan.configs(topic).items())
            print(
                f"created {topic} (partitions={plan.partitions}, "
                f"replication={plan.replication}{', ' + settings if settings else ''})"
            )
        if kept:
            described = await admin.describe_topics(kept)
            partitions = {t["topic"]: len(t["partitions"]) for t in described}
            for topic in kept:
                count = partitions.get(topic)
                note = ""
                if count is not None and count < plan.partitions:
                    note = (
                        f"  [warning: fewer partitions than the {plan.partitions} asked for; "
                        "not changed]"
                    )
                print(f"kept    {topic} (partitions={count}){note}")
        print(f"topics: {len(created)} created, {len(kept)} kept (prefix {plan.prefix!r})")
        return created, kept
    finally:
        await admin.close()


# -- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rapport.topics",
        description="List or create Rapport's Kafka topics (idempotent).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="print every topic name, one a line")
    listing.add_argument("--prefix", help="topic prefix (RAPPORT_TOPIC_PREFIX)")
    listing.add_argument(
        "--json", action="store_true", help="also each service's consumer group and topics"
    )

    sub.add_parser("consumers", help="print each service's consumed topics for the Helm chart")

    create = sub.add_parser("create", help="create the missing topics; keep existing ones")
    create.add_argument("--bootstrap", help="Kafka bootstrap servers (RAPPORT_KAFKA_BOOTSTRAP)")
    create.add_argument("--prefix", help="topic prefix (RAPPORT_TOPIC_PREFIX)")
    create.add_argument("--partitions", help="for new topics (RAPPORT_TOPIC_PARTITIONS)")
    create.add_argument("--replication", help="for new topics (RAPPORT_TOPIC_REPLICATION)")
    create.add_argument(
        "--retention-ms",
        help="retention.ms of new topics, -1 = forever (RAPPORT_TOPIC_RETENTION_MS)",
    )
    create.add_argument(
        "--dlq-retention-ms",
        help="retention.ms of new .dlq topics (RAPPORT_TOPIC_DLQ_RETENTION_MS)",
    )
    create.add_argument(
        "--min-insync-replicas",
        help="min.insync.replicas of new topics (RAPPORT_TOPIC_MIN_INSYNC_REPLICAS)",
    )
    create.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for Kafka to answer (60)"
    )
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        if args.command == "consumers":
            sys.stdout.write(consumers_yaml())
            return 0
        if args.command == "list":
            prefix = args.prefix if args.prefix is not None else env.get("RAPPORT_TOPIC_PREFIX")
            prefix = _checked_prefix(DEFAULT_PREFIX if prefix is None else prefix)
            if args.json:
                document = {"topics": topic_names(prefix), "consumers": consumers(prefix)}
                print(json.dumps(document, indent=2))
            else:
                print("\n".join(topic_names(prefix)))
            return 0
        plan = make_plan(args, env)
        security = kafka_security(env)
    except TopicsError as error:
        print(f"rapport.topics: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(ensure(plan, security))
    except Exception as error:
        print(f"rapport.topics: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
