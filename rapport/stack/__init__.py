"""Start a real local Kafka + PostgreSQL + Redis without Docker.

Kafka (KRaft, one combined broker+controller node) runs from jars that Maven
resolves from ``deploy/stack/kafka-pom.xml`` into a download cache; PostgreSQL
and Redis come from the OS packages (installed with apt-get when missing and
running as root). Every server listens on 127.0.0.1 only (``RAPPORT_STACK_HOST``
adds an address of this machine, such as a container bridge's, that Kafka then
advertises and the printed endpoints name), logs to a file in
the state directory and is started detached (its own session), so it outlives
the Python process that started it::

    python -m rapport.stack up       # start (idempotent), print RAPPORT_...=value
    python -m rapport.stack env      # print `export RAPPORT_...=value` lines
    python -m rapport.stack status
    python -m rapport.stack down

State dir: ``$RAPPORT_STACK_DIR`` else ``<repo>/.stack``. Cache dir:
``$RAPPORT_CACHE_DIR`` else ``~/.cache/rapport``. Ports: ``RAPPORT_STACK_KAFKA_PORT``
(19092; the KRaft controller uses the next port), ``RAPPORT_STACK_PG_PORT``
(55432), ``RAPPORT_STACK_REDIS_PORT`` (56379).

The modules: ``config`` (ports, directories, endpoints), ``processes`` (spawning, pid
files, signals, log rotation, the lock), ``packages`` (apt-get, Java, Kafka's jars with
Maven), one module per server (``kafka``, ``postgres``, ``redis``), ``lifecycle`` (the
three together) and ``command`` (the command line).

This package uses the standard library only.
"""

from __future__ import annotations

from rapport.stack.command import main
from rapport.stack.config import Endpoints, endpoints
from rapport.stack.errors import StackError
from rapport.stack.lifecycle import (
    down,
    pause_kafka,
    pause_postgres,
    restart_kafka,
    resume_kafka,
    resume_postgres,
    status,
    up,
)
from rapport.stack.packages import kafka_version

__all__ = [
    "Endpoints",
    "StackError",
    "down",
    "endpoints",
    "kafka_version",
    "main",
    "pause_kafka",
    "pause_postgres",
    "restart_kafka",
    "resume_kafka",
    "resume_postgres",
    "status",
    "up",
]
