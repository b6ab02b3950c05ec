"""Kafka: one KRaft node (broker and controller) from the jars Maven resolved, its
configuration, its storage, and a probe that speaks just enough of the Kafka protocol to
know that it answers."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import struct
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rapport.stack.config import kafka_port, stack_host
from rapport.stack.errors import StackError
from rapport.stack.packages import java, kafka_libs
from rapport.stack.processes import (
    alive,
    cmdline,
    paused,
    port_taken,
    read_pid,
    run_logged,
    send_signal,
    spawn,
    stop_started,
)

KAFKA_HEAP: Final = ("-Xmx768m", "-Xms256m")
KAFKA_START_TIMEOUT: Final = 90.0

# Every test and benchmark run creates its own topics (a unique prefix each), and this
# broker keeps them. Past this many partitions on disk (each one an open file; a broker
# loading ~20,000 failed on a 20,000 file limit) `up` starts Kafka with empty storage: its
# data is the tests' and the demo's, never anything to keep.
KAFKA_TIDY_PARTITIONS: Final = 8_000


@dataclass(frozen=True)
class _KafkaPaths:
    home: Path
    props: Path
    log4j: Path
    data: Path
    pid: Path
    log: Path

    @classmethod
    def of(cls, state: Path) -> _KafkaPaths:
        home = state / "kafka"
        return cls(
            home=home,
            props=home / "server.properties",
            log4j=home / "log4j2.properties",
            data=home / "data",
            pid=state / "kafka.pid",
            log=state / "kafka.log",
        )


def server_properties(port: int, data: Path) -> str:
    """The broker's settings: clients on ``stack_host()`` (advertised there), its KRaft
    controller on loopback."""
    cport = port + 1
    host = stack_host()
    return f"""\
# Written by rapport/stack/kafka.py on every start; edit the module, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://{host}:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
"""


_LOG4J2: Final = """\
# log4j2 config for the local Kafka: everything to stdout, which rapport/stack/kafka.py
# sends to kafka.log in the state dir.
status = warn
name = rapport-kafka
appender.out.type = Console
appender.out.name = STDOUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
"""


def _cluster_id() -> str:
    """A random Kafka cluster id (base64url of 16 bytes, like ``Uuid.randomUuid``)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _pid(kp: _KafkaPaths) -> int | None:
    pid = read_pid(kp.pid)
    if pid is not None and alive(pid):
        cmd = cmdline(pid)
        if "kafka.Kafka" in cmd and str(kp.props) in cmd:
            return pid
    return None


def running_pid(state: Path) -> int | None:
    """The pid of the Kafka JVM this state dir started, None if it does not run."""
    return _pid(_KafkaPaths.of(state))


# --------------------------------------------------------------------------- the probe


def _request(sock: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    """Send one request (header v1) and return the response body after the correlation id."""
    client_id = b"rapport-stack"
    correlation = int(time.monotonic_ns() & 0x7FFFFFFF)
    header = struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    data = _recv_exact(sock, size)
    if struct.unpack(">i", data[:4])[0] != correlation:
        raise OSError("kafka response with the wrong correlation id")
    return data[4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return bytes(buf)


def answering(port: int, timeout: float = 3.0) -> bool:
    """True when the broker answers ApiVersions and a Metadata request listing a broker."""
    try:
        with socket.create_connection((stack_host(), port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            body = _request(sock, 18, 0, b"")  # ApiVersions v0
            (error,) = struct.unpack(">h", body[:2])
            if error != 0:
                return False
            (count,) = struct.unpack(">i", body[2:6])
            versions = {}
            for i in range(count):
                key, lo, hi = struct.unpack(">hhh", body[6 + 6 * i : 12 + 6 * i])
                versions[key] = (lo, hi)
            if 3 not in versions:
                return False
            lo, hi = versions[3]
            version = max(4, lo)
            if version > min(hi, 7):
                return True  # no non-flexible Metadata version to ask with; ApiVersions will do
            # Metadata v4..v7: topics=[] (none), allow_auto_topic_creation=false
            body = _request(sock, 3, version, struct.pack(">ib", 0, 0))
            brokers: int = struct.unpack(">i", body[4:8])[0]  # after throttle_time_ms
            return brokers >= 1
    except (OSError, struct.error):
        return False


# --------------------------------------------------------------------------- storage


def partitions_on_disk(data: Path) -> int:
    """How many partition directories Kafka's storage ``data`` holds (0 if it is missing)."""
    try:
        return sum(1 for entry in os.scandir(data) if entry.is_dir() and "-" in entry.name)
    except OSError:
        return 0


def _tidy(data: Path) -> None:
    """Past KAFKA_TIDY_PARTITIONS, have the storage reformatted (empty) before the start."""
    crowded = partitions_on_disk(data)
    if crowded > KAFKA_TIDY_PARTITIONS:
        print(
            f"rapport stack: Kafka storage holds {crowded} partitions left by earlier test "
            "runs; starting Kafka with empty storage",
            file=sys.stderr,
        )
        (data / "meta.properties").unlink(missing_ok=True)  # reformatted below


def _format_storage(kp: _KafkaPaths, java_bin: str, common: list[str]) -> None:
    # a half-formatted dir from an interrupted run: start it over
    for child in kp.data.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    run_logged(
        "formatting Kafka storage",
        [
            java_bin,
            "-Xmx256m",
            *common,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            _cluster_id(),
            "--config",
            str(kp.props),
            "--ignore-formatted",
        ],
        kp.log,
        timeout=120,
    )


# --------------------------------------------------------------------------- start and stop


def _launch(state: Path, *, tidy: bool = False) -> tuple[int, bool] | None:
    """Make sure Kafka is starting; None if it already answers, else (pid, was_running)."""
    kp = _KafkaPaths.of(state)
    port = kafka_port()
    pid = _pid(kp)
    if pid is not None:
        if paused(pid):
            send_signal(pid, signal.SIGCONT)
        if answering(port):
            return None
        return pid, True
    kp.pid.unlink(missing_ok=True)
    for p in (port, port + 1):
        if port_taken(p):
            raise StackError(
                f"cannot start Kafka: 127.0.0.1:{p} is already taken by another process "
                f"(set RAPPORT_STACK_KAFKA_PORT)"
            )
    libs = kafka_libs(state)
    java_bin = java(state)
    kp.home.mkdir(parents=True, exist_ok=True)
    kp.data.mkdir(parents=True, exist_ok=True)
    if tidy:
        _tidy(kp.data)
    kp.props.write_text(server_properties(port, kp.data))
    kp.log4j.write_text(_LOG4J2)
    common = [
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={kp.log4j}",
        f"-Dkafka.logs.dir={kp.home}",
        "-cp",
        f"{libs}/*",
    ]
    if not (kp.data / "meta.properties").is_file():
        _format_storage(kp, java_bin, common)
    jvm = [
        java_bin,
        *KAFKA_HEAP,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        *common,
    ]
    pid = spawn("Kafka", [*jvm, "kafka.Kafka", str(kp.props)], kp.log, cwd=kp.home)
    kp.pid.write_text(f"{pid}\n")
    return pid, False


def _wait(state: Path, pid: int) -> None:
    kp = _KafkaPaths.of(state)
    port = kafka_port()
    deadline = time.monotonic() + KAFKA_START_TIMEOUT
    while time.monotonic() < deadline:
        if not alive(pid):
            raise StackError(f"Kafka exited during startup; read {kp.log}")
        if answering(port):
            return
        time.sleep(0.3)
    raise StackError(
        f"Kafka did not answer on {stack_host()}:{port} within {KAFKA_START_TIMEOUT:.0f} s; "
        f"read {kp.log}"
    )


def start(state: Path, *, tidy: bool = False) -> Callable[[], None]:
    """Start Kafka if needed and return a function that waits until it answers (with
    ``tidy``, crowded storage is emptied first)."""
    launched = _launch(state, tidy=tidy)
    if launched is None:
        return lambda: None
    pid, was_running = launched

    def wait() -> None:
        try:
            _wait(state, pid)
        except StackError:
            if not was_running:
                raise
            # a pre-existing broker that never answered: restart it once
            stop(state)
            relaunched = _launch(state)
            if relaunched is not None:
                _wait(state, relaunched[0])

    return wait


def stop(state: Path) -> None:
    """SIGTERM the broker (SIGKILL if it does not exit) and remove its pid file."""
    kp = _KafkaPaths.of(state)
    stop_started("Kafka", _pid(kp), kp.pid, kp.log)
