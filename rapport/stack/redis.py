"""Redis: the OS package's ``redis-server`` on 127.0.0.1, in memory only (no snapshots,
no append-only file)."""

from __future__ import annotations

import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rapport.stack.config import LOOPBACK, listen_addresses, redis_port
from rapport.stack.errors import StackError
from rapport.stack.packages import on_path_or_installed
from rapport.stack.processes import (
    alive,
    cmdline,
    port_taken,
    read_pid,
    send_signal,
    spawn,
    stop_started,
)

REDIS_START_TIMEOUT: Final = 20.0


@dataclass(frozen=True)
class _RedisPaths:
    home: Path
    pid: Path
    log: Path

    @classmethod
    def of(cls, state: Path) -> _RedisPaths:
        return cls(home=state / "redis", pid=state / "redis.pid", log=state / "redis.log")


def _server(state: Path) -> str:
    return on_path_or_installed(state, "redis-server", "redis-server")


def _pid(rp: _RedisPaths) -> int | None:
    pid = read_pid(rp.pid)
    if pid is not None and alive(pid) and "redis-server" in cmdline(pid):
        return pid
    return None


def running_pid(state: Path) -> int | None:
    """The pid of the redis-server this state dir started, None if it does not run."""
    return _pid(_RedisPaths.of(state))


def answering(port: int, timeout: float = 2.0) -> bool:
    """True when the server answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start(state: Path) -> None:
    """Start Redis unless it runs and answers (waking it if paused); wait for its PONG."""
    rp = _RedisPaths.of(state)
    port = redis_port()
    pid = _pid(rp)
    if pid is not None:
        send_signal(pid, signal.SIGCONT)
        if answering(port):
            return
    else:
        rp.pid.unlink(missing_ok=True)
        if port_taken(port):
            raise StackError(
                f"cannot start Redis: 127.0.0.1:{port} is already taken by another process "
                f"(set RAPPORT_STACK_REDIS_PORT)"
            )
        server = _server(state)
        rp.home.mkdir(parents=True, exist_ok=True)
        cmd = [
            server,
            "--port",
            str(port),
            "--bind",
            *listen_addresses(),
            # Without a password Redis refuses clients that are not on loopback unless told
            # otherwise; only RAPPORT_STACK_HOST adds an address besides loopback.
            "--protected-mode",
            "yes" if listen_addresses() == [LOOPBACK] else "no",
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(rp.home),
            "--logfile",
            "",
        ]
        pid = spawn("Redis", cmd, rp.log, cwd=rp.home)
        rp.pid.write_text(f"{pid}\n")
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while not answering(port):
        if not alive(pid):
            raise StackError(f"Redis exited during startup; read {rp.log}")
        if time.monotonic() >= deadline:
            raise StackError(
                f"Redis did not answer PING within {REDIS_START_TIMEOUT:.0f} s; read {rp.log}"
            )
        time.sleep(0.1)


def stop(state: Path) -> None:
    """SIGTERM the server (SIGKILL if it does not exit) and remove its pid file."""
    rp = _RedisPaths.of(state)
    stop_started("Redis", _pid(rp), rp.pid, rp.log)
