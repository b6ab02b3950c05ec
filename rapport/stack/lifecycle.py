"""The three servers together: up, down, status, and the pauses and restart the chaos
tests use."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from rapport.stack import config, kafka, postgres, redis
from rapport.stack.config import Endpoints, endpoints, kafka_port, postgres_port, redis_port
from rapport.stack.errors import StackError
from rapport.stack.processes import locked, paused, send_signal


def up(state_dir: Path | None = None) -> Endpoints:
    """Start Kafka, PostgreSQL and Redis unless they already run and answer."""
    state = config.state_dir(state_dir)
    with locked(state):
        wait_kafka = kafka.start(state, tidy=True)  # the JVM boots while the others start
        postgres.start(state)
        redis.start(state)
        wait_kafka()
    return endpoints()


def down(state_dir: Path | None = None) -> None:
    """Stop all three servers and wait for them to exit (no-op for stopped ones)."""
    state = config.state_dir(state_dir)
    errors: list[str] = []
    with locked(state):
        for stop in (kafka.stop, redis.stop, postgres.stop):
            try:
                stop(state)
            except StackError as exc:
                errors.append(str(exc))
    if errors:
        raise StackError(" | ".join(errors))


def _describe(pid: int | None, answering: Callable[[], bool]) -> str:
    if pid is None:
        return "stopped"
    if paused(pid):
        return f"running pid {pid}, paused"
    return f"running pid {pid}, {'answering' if answering() else 'not answering'}"


def status(state_dir: Path | None = None) -> dict[str, str]:
    """Per component: "running pid N, answering" (or "not answering"/"paused"), or "stopped"."""
    state = config.state_dir(state_dir)
    return {
        "kafka": _describe(kafka.running_pid(state), lambda: kafka.answering(kafka_port())),
        "postgres": _describe(
            postgres.running_pid(state), lambda: postgres.answering(postgres_port())
        ),
        "redis": _describe(redis.running_pid(state), lambda: redis.answering(redis_port())),
    }


def _require(pid: int | None, what: str) -> int:
    if pid is None:
        raise StackError(f"{what} is not running (run `python -m rapport.stack up`)")
    return pid


def pause_kafka(state_dir: Path | None = None) -> None:
    """SIGSTOP the Kafka JVM: connections hang as in a network outage."""
    pid = _require(kafka.running_pid(config.state_dir(state_dir)), "Kafka")
    send_signal(pid, signal.SIGSTOP)


def resume_kafka(state_dir: Path | None = None) -> None:
    """SIGCONT the Kafka JVM."""
    pid = _require(kafka.running_pid(config.state_dir(state_dir)), "Kafka")
    send_signal(pid, signal.SIGCONT)


def restart_kafka(state_dir: Path | None = None) -> None:
    """Stop Kafka (SIGTERM, as a rolling restart does), start it again on the same port and
    data, and wait until it answers."""
    state = config.state_dir(state_dir)
    with locked(state):
        _require(kafka.running_pid(state), "Kafka")
        kafka.stop(state)
        kafka.start(state)()


def pause_postgres(state_dir: Path | None = None) -> None:
    """SIGSTOP the postmaster and all its backends."""
    pid = _require(postgres.running_pid(config.state_dir(state_dir)), "PostgreSQL")
    postgres.signal_tree(pid, signal.SIGSTOP)


def resume_postgres(state_dir: Path | None = None) -> None:
    """SIGCONT the backends and the postmaster."""
    pid = _require(postgres.running_pid(config.state_dir(state_dir)), "PostgreSQL")
    postgres.signal_tree(pid, signal.SIGCONT)
