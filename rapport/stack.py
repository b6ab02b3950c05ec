"""Start a real local Kafka + PostgreSQL + Redis without Docker.

Kafka (KRaft, one combined broker+controller node) runs from jars that Maven
resolves from ``deploy/stack/kafka-pom.xml`` into a download cache; PostgreSQL
and Redis come from the OS packages (installed with apt-get when missing and
running as root). Every server listens on 127.0.0.1 only, logs to a file in
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

This module uses the standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

__all__ = [
    "Endpoints",
    "StackError",
    "down",
    "endpoints",
    "main",
    "pause_kafka",
    "pause_postgres",
    "resume_kafka",
    "resume_postgres",
    "status",
    "up",
]

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
KAFKA_POM: Final = REPO_ROOT / "deploy" / "stack" / "kafka-pom.xml"

DEFAULT_KAFKA_PORT: Final = 19092
DEFAULT_PG_PORT: Final = 55432
DEFAULT_REDIS_PORT: Final = 56379

PG_USER: Final = "rapport"  # owns the tables; runs migrations (and the tests' admin work)
PG_PASSWORD: Final = "rapport"
# What the services connect as: not the owner, no BYPASSRLS, so row-level security applies.
PG_APP_USER: Final = "rapport_app"
PG_APP_PASSWORD: Final = "rapport_app"
PG_DATABASE: Final = "rapport"
PG_OS_USER: Final = "postgres"

KAFKA_HEAP: Final = ("-Xmx768m", "-Xms256m")
KAFKA_START_TIMEOUT: Final = 90.0
PG_START_TIMEOUT: Final = 60.0
REDIS_START_TIMEOUT: Final = 20.0
STOP_TIMEOUT: Final = 30.0
LOG_ROTATE_BYTES: Final = 20 * 1024 * 1024

_POSTGRES_SETTINGS: Final = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",
)


class StackError(RuntimeError):
    """A step of bringing the stack up or down failed; the message is one line."""


@dataclass(frozen=True)
class Endpoints:
    """Where the three servers answer."""

    kafka_bootstrap: str
    database_url: str  # as the owner: migrations and administration
    redis_url: str
    app_database_url: str = ""  # as the application role: what the services use

    def as_env(self) -> dict[str, str]:
        return {
            "RAPPORT_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "RAPPORT_DATABASE_URL": self.app_database_url or self.database_url,
            "RAPPORT_MIGRATION_DATABASE_URL": self.database_url,
            "RAPPORT_REDIS_URL": self.redis_url,
        }


# --------------------------------------------------------------------------- config


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65534:
        raise StackError(f"{name}={raw!r} is out of range")
    return port


def _kafka_port() -> int:
    return _env_port("RAPPORT_STACK_KAFKA_PORT", DEFAULT_KAFKA_PORT)


def _pg_port() -> int:
    return _env_port("RAPPORT_STACK_PG_PORT", DEFAULT_PG_PORT)


def _redis_port() -> int:
    return _env_port("RAPPORT_STACK_REDIS_PORT", DEFAULT_REDIS_PORT)


def endpoints() -> Endpoints:
    """The endpoints for the configured ports (does not start anything)."""
    return Endpoints(
        kafka_bootstrap=f"127.0.0.1:{_kafka_port()}",
        database_url=(
            f"postgresql+asyncpg://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{_pg_port()}/{PG_DATABASE}"
        ),
        redis_url=f"redis://127.0.0.1:{_redis_port()}/0",
        app_database_url=(
            f"postgresql+asyncpg://{PG_APP_USER}:{PG_APP_PASSWORD}@127.0.0.1:{_pg_port()}/"
            f"{PG_DATABASE}"
        ),
    )


def _state_dir(state_dir: Path | None) -> Path:
    if state_dir is not None:
        path = Path(state_dir)
    elif os.environ.get("RAPPORT_STACK_DIR"):
        path = Path(os.environ["RAPPORT_STACK_DIR"])
    else:
        path = REPO_ROOT / ".stack"
    path = path.expanduser().absolute()
    if not path.is_dir():
        try:
            path.mkdir(parents=True)
            path.chmod(0o755)  # the postgres OS user must be able to traverse it
        except FileExistsError:
            pass
        except OSError as exc:
            raise StackError(f"cannot create state dir {path}: {exc.strerror}") from None
    return path


def _cache_dir() -> Path:
    raw = os.environ.get("RAPPORT_CACHE_DIR")
    path = Path(raw) if raw else Path.home() / ".cache" / "rapport"
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StackError(f"cannot create cache dir {path}: {exc.strerror}") from None
    return path


@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    """Serialise up/down across processes sharing one state dir."""
    with open(state / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------- processes


def _is_root() -> bool:
    return os.geteuid() == 0


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a live process, None if gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    if len(fields) < 2 or fields[0] in ("Z", "X", "x"):
        return None
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our own child
    return _proc_stat(pid) is not None


def _paused(pid: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] in ("T", "t")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _proc_stat(int(entry.name))
        if st is not None and st[1] == pid:
            kids.append(int(entry.name))
    return kids


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(_alive(p) for p in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def _rotate(log: Path) -> None:
    with contextlib.suppress(OSError):
        if log.stat().st_size > LOG_ROTATE_BYTES:
            log.replace(log.with_name(log.name + ".1"))


def _user_ids(user: str | None) -> tuple[int | None, int | None, list[int] | None]:
    """(uid, gid, supplementary gids) for subprocess to switch to; all None for ourselves."""
    if user is None:
        return None, None, None
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid, os.getgrouplist(user, pw.pw_gid)


def _user_env(user: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if user is not None:
        pw = pwd.getpwnam(user)
        env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user)
    return env


# Runs as an intermediate process: starts the server as its own child and exits
# at once, so the server is re-parented to init and never becomes a zombie or a
# ResourceWarning in the Python process that called up(). Its session is the new
# one the intermediate process was started in.
_LAUNCHER: Final = r"""
import os, pwd, subprocess, sys
user, cwd, *cmd = sys.argv[1:]
kw = {}
if user:
    pw = pwd.getpwnam(user)
    kw = dict(user=pw.pw_uid, group=pw.pw_gid,
              extra_groups=os.getgrouplist(user, pw.pw_gid))
p = subprocess.Popen(cmd, cwd=cwd or None, stdin=subprocess.DEVNULL,
                     stdout=2, stderr=2, close_fds=True, **kw)
sys.stdout.write(str(p.pid))
sys.stdout.flush()
os._exit(0)
"""


def _spawn(
    what: str,
    cmd: Sequence[str],
    log: Path,
    *,
    user: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``cmd`` detached (new session, stdin /dev/null, output to ``log``); its pid."""
    _rotate(log)
    with open(log, "ab") as logf:
        logf.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {what}\n".encode())
        logf.flush()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _LAUNCHER, user or "", str(cwd or ""), *cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=logf,
                env=env if env is not None else _user_env(user),
                start_new_session=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(f"could not start {what} ({exc}); read {log}") from None
    out = proc.stdout.decode().strip()
    if proc.returncode != 0 or not out.isdigit():
        raise StackError(f"could not start {what}; read {log}")
    return int(out)


def _run_logged(
    what: str,
    cmd: Sequence[str],
    log: Path,
    *,
    user: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> None:
    """Run a setup command to completion, appending its output to ``log``."""
    uid, gid, groups = _user_ids(user)
    with open(log, "ab") as logf:
        logf.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {what}: ".encode())
        logf.write(shlex.join(cmd).encode() + b"\n")
        logf.flush()
        try:
            rc = subprocess.run(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env if env is not None else _user_env(user),
                timeout=timeout,
                check=False,
                user=uid,
                group=gid,
                extra_groups=groups,
            ).returncode
        except FileNotFoundError:
            raise StackError(f"{what} failed: {cmd[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise StackError(f"{what} timed out after {timeout:.0f} s; read {log}") from None
    if rc != 0:
        raise StackError(f"{what} failed (exit {rc}); read {log}")


def _stop_pids(
    pids: Sequence[int],
    first: signal.Signals,
    timeout: float,
    extra: Callable[[], list[int]] | None = None,
) -> None:
    """Signal ``pids`` with ``first`` (waking them if paused), then SIGKILL after ``timeout``."""
    pids = [p for p in pids if _alive(p)]
    if not pids:
        return
    for p in pids:
        _signal(p, first)
    for p in [*pids, *(extra() if extra else [])]:
        _signal(p, signal.SIGCONT)  # a SIGSTOPped process only acts on signals when woken
    if _wait_gone(pids, timeout):
        return
    victims = [*pids, *(extra() if extra else [])]
    for p in victims:
        _signal(p, signal.SIGKILL)
    if not _wait_gone(victims, 10):
        raise StackError(f"pids {victims} did not exit even after SIGKILL")


def _port_taken(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _apt_install(state: Path, *packages: str) -> None:
    if not _is_root():
        raise StackError(f"missing {', '.join(packages)}: install it (apt-get install -y ...)")
    if shutil.which("apt-get") is None:
        raise StackError(f"missing {', '.join(packages)} and no apt-get to install it with")
    log = state / "apt.log"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    global _APT_UPDATED
    if not _APT_UPDATED:
        _run_logged("apt-get update", ["apt-get", "update"], log, env=env, timeout=600)
        _APT_UPDATED = True
    _run_logged(
        f"apt-get install {' '.join(packages)}",
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        log,
        env=env,
        timeout=900,
    )


_APT_UPDATED = False


# --------------------------------------------------------------------------- Kafka


def _kafka_version() -> str:
    try:
        root = ET.parse(KAFKA_POM).getroot()
    except (OSError, ET.ParseError) as exc:
        raise StackError(f"cannot read {KAFKA_POM}: {exc}") from None
    for el in root.iter():
        if el.tag.endswith("}kafka.version") or el.tag == "kafka.version":
            if el.text and el.text.strip():
                return el.text.strip()
    raise StackError(f"no <kafka.version> property in {KAFKA_POM}")


def _java(state: Path) -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        _apt_install(state, "default-jre-headless")
        found = shutil.which("java")
    if found is None:
        raise StackError("java not found after installing default-jre-headless")
    return found


def _kafka_libs(state: Path) -> Path:
    """The libs dir holding Kafka and its runtime jars, resolved with Maven once."""
    version = _kafka_version()
    pom_digest = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()
    home = _cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    marker = home / "complete"
    if libs.is_dir() and marker.is_file() and marker.read_text().strip() == pom_digest:
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        _java(state)
        _apt_install(state, "maven")
        mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("mvn not found after installing maven")
    tmp = home / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    log = state / "maven.log"
    _run_logged(
        f"resolving Kafka {version} jars with Maven",
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ],
        log,
        timeout=1800,
    )
    if not any(tmp.glob(f"kafka_2.13-{version}.jar")):
        raise StackError(f"Maven finished but kafka_2.13-{version}.jar is missing; read {log}")
    shutil.rmtree(libs, ignore_errors=True)
    marker.unlink(missing_ok=True)
    tmp.rename(libs)
    marker.write_text(pom_digest + "\n")
    return libs


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


def _kafka_properties(port: int, data: Path) -> str:
    cport = port + 1
    return f"""\
# Written by rapport/stack.py on every start; edit the module, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
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


_KAFKA_LOG4J2: Final = """\
# log4j2 config for the local Kafka: everything to stdout, which stack.py sends
# to kafka.log in the state dir.
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


def _kafka_cluster_id() -> str:
    """A random Kafka cluster id (base64url of 16 bytes, like ``Uuid.randomUuid``)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _kafka_pid(kp: _KafkaPaths) -> int | None:
    pid = _read_pid(kp.pid)
    if pid is not None and _alive(pid):
        cmd = _cmdline(pid)
        if "kafka.Kafka" in cmd and str(kp.props) in cmd:
            return pid
    return None


def _kafka_request(sock: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
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


def _kafka_answering(port: int, timeout: float = 3.0) -> bool:
    """True when the broker answers ApiVersions and a Metadata request listing a broker."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            body = _kafka_request(sock, 18, 0, b"")  # ApiVersions v0
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
            body = _kafka_request(sock, 3, version, struct.pack(">ib", 0, 0))
            brokers: int = struct.unpack(">i", body[4:8])[0]  # after throttle_time_ms
            return brokers >= 1
    except (OSError, struct.error):
        return False


# Every test and benchmark run creates its own topics (a unique prefix each), and this
# broker keeps them. Past this many partitions on disk (each one an open file; a broker
# loading ~20,000 failed on a 20,000 file limit) `up` starts Kafka with empty storage: its
# data is the tests' and the demo's, never anything to keep.
KAFKA_TIDY_PARTITIONS: Final = 8_000


def _partitions_on_disk(data: Path) -> int:
    try:
        return sum(1 for entry in os.scandir(data) if entry.is_dir() and "-" in entry.name)
    except OSError:
        return 0


def _kafka_launch(state: Path, *, tidy: bool = False) -> tuple[int, bool] | None:
    """Make sure Kafka is starting; None if it already answers, else (pid, was_running)."""
    kp = _KafkaPaths.of(state)
    port = _kafka_port()
    pid = _kafka_pid(kp)
    if pid is not None:
        if _paused(pid):
            _signal(pid, signal.SIGCONT)
        if _kafka_answering(port):
            return None
        return pid, True
    kp.pid.unlink(missing_ok=True)
    for p in (port, port + 1):
        if _port_taken(p):
            raise StackError(
                f"cannot start Kafka: 127.0.0.1:{p} is already taken by another process "
                f"(set RAPPORT_STACK_KAFKA_PORT)"
            )
    libs = _kafka_libs(state)
    java = _java(state)
    kp.home.mkdir(parents=True, exist_ok=True)
    kp.data.mkdir(parents=True, exist_ok=True)
    crowded = _partitions_on_disk(kp.data) if tidy else 0
    if crowded > KAFKA_TIDY_PARTITIONS:
        print(
            f"rapport stack: Kafka storage holds {crowded} partitions left by earlier test "
            "runs; starting Kafka with empty storage",
            file=sys.stderr,
        )
        (kp.data / "meta.properties").unlink(missing_ok=True)  # reformatted below
    kp.props.write_text(_kafka_properties(port, kp.data))
    kp.log4j.write_text(_KAFKA_LOG4J2)
    common = [
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={kp.log4j}",
        f"-Dkafka.logs.dir={kp.home}",
        "-cp",
        f"{libs}/*",
    ]
    if not (kp.data / "meta.properties").is_file():
        # a half-formatted dir from an interrupted run: start it over
        for child in kp.data.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        _run_logged(
            "formatting Kafka storage",
            [
                java,
                "-Xmx256m",
                *common,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                _kafka_cluster_id(),
                "--config",
                str(kp.props),
                "--ignore-formatted",
            ],
            kp.log,
            timeout=120,
        )
    jvm = [
        java,
        *KAFKA_HEAP,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        *common,
    ]
    pid = _spawn("Kafka", [*jvm, "kafka.Kafka", str(kp.props)], kp.log, cwd=kp.home)
    kp.pid.write_text(f"{pid}\n")
    return pid, False


def _kafka_wait(state: Path, pid: int) -> None:
    kp = _KafkaPaths.of(state)
    port = _kafka_port()
    deadline = time.monotonic() + KAFKA_START_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise StackError(f"Kafka exited during startup; read {kp.log}")
        if _kafka_answering(port):
            return
        time.sleep(0.3)
    raise StackError(
        f"Kafka did not answer on 127.0.0.1:{port} within {KAFKA_START_TIMEOUT:.0f} s; "
        f"read {kp.log}"
    )


def _kafka_up(state: Path, *, tidy: bool = False) -> Callable[[], None]:
    """Start Kafka if needed and return a function that waits until it answers."""
    launched = _kafka_launch(state, tidy=tidy)
    if launched is None:
        return lambda: None
    pid, was_running = launched

    def wait() -> None:
        try:
            _kafka_wait(state, pid)
        except StackError:
            if not was_running:
                raise
            # a pre-existing broker that never answered: restart it once
            _kafka_down(state)
            relaunched = _kafka_launch(state)
            if relaunched is not None:
                _kafka_wait(state, relaunched[0])

    return wait


def _kafka_down(state: Path) -> None:
    kp = _KafkaPaths.of(state)
    pid = _kafka_pid(kp)
    if pid is not None:
        try:
            _stop_pids([pid], signal.SIGTERM, STOP_TIMEOUT)
        except StackError as exc:
            raise StackError(f"stopping Kafka: {exc}; read {kp.log}") from None
    kp.pid.unlink(missing_ok=True)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bindir(state: Path) -> Path:
    def complete(d: Path) -> bool:
        return all((d / b).is_file() for b in ("initdb", "postgres", "psql"))

    for tool in ("initdb", "pg_ctl", "postgres"):
        found = shutil.which(tool)
        if found and complete(Path(found).resolve().parent):
            return Path(found).resolve().parent

    def major(d: Path) -> float:
        try:
            return float(d.parent.name)
        except ValueError:
            return 0.0

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True)
    for d in candidates:
        if complete(d):
            return d
    if not _is_root():
        raise StackError(
            "PostgreSQL server binaries not found: install them (apt-get install -y postgresql)"
        )
    _apt_install(state, "postgresql")
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True):
        if complete(d):
            return d
    raise StackError("PostgreSQL binaries not found even after apt-get install postgresql")


def _pg_os_user() -> str | None:
    """The OS user to run PostgreSQL as (initdb refuses root), None for ourselves."""
    if not _is_root():
        return None
    try:
        pwd.getpwnam(PG_OS_USER)
        return PG_OS_USER
    except KeyError:
        pass
    cmd = [
        "useradd",
        "--system",
        "--user-group",
        "--home-dir",
        "/var/lib/postgresql",
        "--shell",
        "/bin/sh",
        PG_OS_USER,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StackError(f"useradd {PG_OS_USER} failed: {_last_line(proc.stderr)}")
    return PG_OS_USER


@dataclass(frozen=True)
class _PgPaths:
    root: Path  # owned by the postgres OS user
    data: Path
    sock: Path
    done: Path
    pid: Path
    log: Path

    @classmethod
    def of(cls, state: Path) -> _PgPaths:
        root = state / "postgres"
        if _is_root() and not _user_can_enter(PG_OS_USER, state):
            # e.g. a state dir under /root: keep the cluster where postgres can reach it
            digest = hashlib.sha256(str(state).encode()).hexdigest()[:12]
            root = Path("/var/tmp") / f"rapport-stack-pg-{digest}"
        sock = root / "sock"
        if len(f"{sock}/.s.PGSQL.{_pg_port()}") > 100:  # sun_path limit
            digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
            sock = Path("/tmp") / f"rapport-pg-{digest}"
        return cls(
            root=root,
            data=root / "data",
            sock=sock,
            done=root / "initdb.done",
            pid=state / "postgres.pid",
            log=state / "postgres.log",
        )


def _user_can_enter(user: str, path: Path) -> bool:
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return True  # will be created; assume the usual world-traversable dirs
    groups = set(os.getgrouplist(user, pw.pw_gid))
    for d in [path, *path.parents]:
        try:
            st = d.stat()
        except OSError:
            return False
        if st.st_uid == pw.pw_uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _pg_pid(pp: _PgPaths) -> int | None:
    pid = _read_pid(pp.data / "postmaster.pid")
    if pid is not None and _alive(pid) and "postgres" in _cmdline(pid):
        return pid
    pid = _read_pid(pp.pid)  # postmaster.pid may not be written yet during startup
    if pid is not None and _alive(pid) and str(pp.data) in _cmdline(pid):
        return pid
    return None


def _pg_leftovers(pp: _PgPaths) -> list[int]:
    """Live processes working in the data dir (orphaned backends of a dead postmaster)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")) == pp.data and _alive(int(entry.name)):
                    found.append(int(entry.name))
    return found


def _pg_clear_stale(pp: _PgPaths) -> None:
    """Before starting a postmaster: end orphaned backends and drop a dead one's lock file.

    PostgreSQL itself refuses to start while the pid in postmaster.pid (or in the
    socket's lock file) exists, which includes a killed postmaster that init has not
    reaped yet.
    """
    leftovers = _pg_leftovers(pp)
    if leftovers:
        _stop_pids(leftovers, signal.SIGKILL, 10)
    for lock in [pp.data / "postmaster.pid", *pp.sock.glob(".s.PGSQL.*.lock")]:
        pid = _read_pid(lock)
        if pid is not None and not _alive(pid):
            lock.unlink(missing_ok=True)


def _pg_answering(port: int, timeout: float = 2.0) -> bool:
    """True when the postmaster answers an SSLRequest (no login needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">ii", 8, 80877103))
            return sock.recv(1) in (b"N", b"S")
    except OSError:
        return False


def _psql(
    bindir: Path, pp: _PgPaths, port: int, sql: str, user: str | None
) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(bindir / "psql"),
        "-X",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(pp.sock),
        "-p",
        str(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-c",
        sql,
    ]
    uid, gid, groups = _user_ids(user)
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=pp.root,
        env=_user_env(user),
        timeout=30,
        check=False,
        user=uid,
        group=gid,
        extra_groups=groups,
    )


def _pg_up(state: Path) -> None:
    pp = _PgPaths.of(state)
    port = _pg_port()
    user = _pg_os_user()
    pid = _pg_pid(pp)
    if pid is not None:
        _pg_signal_tree(pid, signal.SIGCONT)
        if _pg_answering(port):
            bindir = _pg_bindir(state)
            _pg_wait_and_provision(bindir, pp, port, user, pid)
            return
    elif _port_taken(port):
        raise StackError(
            f"cannot start PostgreSQL: 127.0.0.1:{port} is already taken by another process "
            f"(set RAPPORT_STACK_PG_PORT)"
        )
    bindir = _pg_bindir(state)
    for d in (pp.root, pp.sock):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700 if d == pp.root else 0o755)
        _chown(d, user)
    if not (pp.done.is_file() and (pp.data / "PG_VERSION").is_file()):
        pp.done.unlink(missing_ok=True)
        if pp.data.exists():
            shutil.rmtree(pp.data)  # left over from an interrupted initdb
        _run_logged(
            "initdb",
            [
                str(bindir / "initdb"),
                "-D",
                str(pp.data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            pp.log,
            user=user,
            cwd=pp.root,
            timeout=300,
        )
        pp.done.write_text("ok\n")
    else:
        have = (pp.data / "PG_VERSION").read_text().strip()
        want = bindir.parent.name
        if want.replace(".", "").isdigit() and have != want:
            raise StackError(
                f"PostgreSQL data in {pp.data} is version {have} but the server is {want}: "
                f"run `python -m rapport.stack down` and delete {pp.root}"
            )
    if pid is None:
        pp.pid.unlink(missing_ok=True)
        _pg_clear_stale(pp)
        args = [
            str(bindir / "postgres"),
            "-D",
            str(pp.data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={pp.sock}",
        ]
        for setting in _POSTGRES_SETTINGS:
            args += ["-c", setting]
        pid = _spawn("PostgreSQL", args, pp.log, user=user, cwd=pp.root)
        pp.pid.write_text(f"{pid}\n")
    _pg_wait_and_provision(bindir, pp, port, user, pid)


def _pg_wait_and_provision(
    bindir: Path, pp: _PgPaths, port: int, user: str | None, pid: int
) -> None:
    deadline = time.monotonic() + PG_START_TIMEOUT
    last = ""
    while True:
        if not _alive(pid):
            raise StackError(f"PostgreSQL exited during startup; read {pp.log}")
        proc = _psql(bindir, pp, port, "SELECT 1", user)
        if proc.returncode == 0:
            break
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        if time.monotonic() >= deadline:
            raise StackError(
                f"PostgreSQL did not answer within {PG_START_TIMEOUT:.0f} s ({last}); read {pp.log}"
            )
        time.sleep(0.2)
    pp.pid.write_text(f"{pid}\n")
    provision = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_USER}') THEN
    CREATE ROLE {PG_USER} LOGIN SUPERUSER PASSWORD '{PG_PASSWORD}';
  ELSE
    ALTER ROLE {PG_USER} LOGIN SUPERUSER PASSWORD '{PG_PASSWORD}';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_APP_USER}') THEN
    CREATE ROLE {PG_APP_USER} LOGIN PASSWORD '{PG_APP_PASSWORD}';
  END IF;
  ALTER ROLE {PG_APP_USER} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
    PASSWORD '{PG_APP_PASSWORD}';
END $$;
"""
    for sql in (provision,):
        proc = _psql(bindir, pp, port, sql, user)
        if proc.returncode != 0:
            raise StackError(f"creating role {PG_USER} failed: {_last_line(proc.stderr)}")
    proc = _psql(bindir, pp, port, f"SELECT 1 FROM pg_database WHERE datname='{PG_DATABASE}'", user)
    if proc.returncode != 0:
        raise StackError(f"querying pg_database failed: {_last_line(proc.stderr)}")
    if proc.stdout.strip() != "1":
        proc = _psql(bindir, pp, port, f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}", user)
        if proc.returncode != 0 and "already exists" not in proc.stderr:
            raise StackError(f"creating database {PG_DATABASE} failed: {_last_line(proc.stderr)}")
    # the honest check: the URL the services use, over TCP with the password
    url = f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/{PG_DATABASE}"
    check = subprocess.run(
        [str(bindir / "psql"), "-X", "-qtA", url, "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        cwd=pp.root if user is None else None,
        timeout=30,
        check=False,
    )
    if check.returncode != 0 or check.stdout.strip() != "1":
        raise StackError(
            f"PostgreSQL is up but {PG_USER}@127.0.0.1:{port}/{PG_DATABASE} cannot log in: "
            f"{_last_line(check.stderr)}; read {pp.log}"
        )


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _pg_signal_tree(pid: int, sig: signal.Signals) -> None:
    """Signal the postmaster and all its backends (postmaster first when stopping)."""
    if sig == signal.SIGSTOP:
        _signal(pid, sig)  # no new backends forked from here on
        for kid in _children(pid):
            _signal(kid, sig)
    else:
        for kid in _children(pid):
            _signal(kid, sig)
        _signal(pid, sig)


def _pg_down(state: Path) -> None:
    pp = _PgPaths.of(state)
    pid = _pg_pid(pp)
    if pid is not None:
        postmaster = pid
        kids = _children(postmaster)
        try:
            # SIGINT = "fast" shutdown: roll back open sessions rather than wait for them
            _stop_pids(
                [postmaster],
                signal.SIGINT,
                STOP_TIMEOUT,
                extra=lambda: _children(postmaster) + kids,
            )
            _stop_pids([*kids, *_pg_leftovers(pp)], signal.SIGKILL, 10)
        except StackError as exc:
            raise StackError(f"stopping PostgreSQL: {exc}; read {pp.log}") from None
    pp.pid.unlink(missing_ok=True)


# --------------------------------------------------------------------------- Redis


@dataclass(frozen=True)
class _RedisPaths:
    home: Path
    pid: Path
    log: Path

    @classmethod
    def of(cls, state: Path) -> _RedisPaths:
        return cls(home=state / "redis", pid=state / "redis.pid", log=state / "redis.log")


def _redis_server(state: Path) -> str:
    found = shutil.which("redis-server")
    if found is None:
        _apt_install(state, "redis-server")
        found = shutil.which("redis-server")
    if found is None:
        raise StackError("redis-server not found even after apt-get install redis-server")
    return found


def _redis_pid(rp: _RedisPaths) -> int | None:
    pid = _read_pid(rp.pid)
    if pid is not None and _alive(pid) and "redis-server" in _cmdline(pid):
        return pid
    return None


def _redis_answering(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_up(state: Path) -> None:
    rp = _RedisPaths.of(state)
    port = _redis_port()
    pid = _redis_pid(rp)
    if pid is not None:
        _signal(pid, signal.SIGCONT)
        if _redis_answering(port):
            return
    else:
        rp.pid.unlink(missing_ok=True)
        if _port_taken(port):
            raise StackError(
                f"cannot start Redis: 127.0.0.1:{port} is already taken by another process "
                f"(set RAPPORT_STACK_REDIS_PORT)"
            )
        server = _redis_server(state)
        rp.home.mkdir(parents=True, exist_ok=True)
        cmd = [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
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
        pid = _spawn("Redis", cmd, rp.log, cwd=rp.home)
        rp.pid.write_text(f"{pid}\n")
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while not _redis_answering(port):
        if not _alive(pid):
            raise StackError(f"Redis exited during startup; read {rp.log}")
        if time.monotonic() >= deadline:
            raise StackError(
                f"Redis did not answer PING within {REDIS_START_TIMEOUT:.0f} s; read {rp.log}"
            )
        time.sleep(0.1)


def _redis_down(state: Path) -> None:
    rp = _RedisPaths.of(state)
    pid = _redis_pid(rp)
    if pid is not None:
        try:
            _stop_pids([pid], signal.SIGTERM, STOP_TIMEOUT)
        except StackError as exc:
            raise StackError(f"stopping Redis: {exc}; read {rp.log}") from None
    rp.pid.unlink(missing_ok=True)


# --------------------------------------------------------------------------- public API


def up(state_dir: Path | None = None) -> Endpoints:
    """Start Kafka, PostgreSQL and Redis unless they already run and answer."""
    state = _state_dir(state_dir)
    with _locked(state):
        wait_kafka = _kafka_up(state, tidy=True)  # the JVM boots while the others start
        _pg_up(state)
        _redis_up(state)
        wait_kafka()
    return endpoints()


def down(state_dir: Path | None = None) -> None:
    """Stop all three servers and wait for them to exit (no-op for stopped ones)."""
    state = _state_dir(state_dir)
    errors: list[str] = []
    with _locked(state):
        for stop in (_kafka_down, _redis_down, _pg_down):
            try:
                stop(state)
            except StackError as exc:
                errors.append(str(exc))
    if errors:
        raise StackError(" | ".join(errors))


def _describe(pid: int | None, answering: Callable[[], bool]) -> str:
    if pid is None:
        return "stopped"
    if _paused(pid):
        return f"running pid {pid}, paused"
    return f"running pid {pid}, {'answering' if answering() else 'not answering'}"


def status(state_dir: Path | None = None) -> dict[str, str]:
    """Per component: "running pid N, answering" (or "not answering"/"paused"), or "stopped"."""
    state = _state_dir(state_dir)
    return {
        "kafka": _describe(
            _kafka_pid(_KafkaPaths.of(state)), lambda: _kafka_answering(_kafka_port())
        ),
        "postgres": _describe(_pg_pid(_PgPaths.of(state)), lambda: _pg_answering(_pg_port())),
        "redis": _describe(
            _redis_pid(_RedisPaths.of(state)), lambda: _redis_answering(_redis_port())
        ),
    }


def _require(pid: int | None, what: str) -> int:
    if pid is None:
        raise StackError(f"{what} is not running (run `python -m rapport.stack up`)")
    return pid


def pause_kafka(state_dir: Path | None = None) -> None:
    """SIGSTOP the Kafka JVM: connections hang as in a network outage."""
    pid = _require(_kafka_pid(_KafkaPaths.of(_state_dir(state_dir))), "Kafka")
    _signal(pid, signal.SIGSTOP)


def resume_kafka(state_dir: Path | None = None) -> None:
    """SIGCONT the Kafka JVM."""
    pid = _require(_kafka_pid(_KafkaPaths.of(_state_dir(state_dir))), "Kafka")
    _signal(pid, signal.SIGCONT)


def restart_kafka(state_dir: Path | None = None) -> None:
    """Stop Kafka (SIGTERM, as a rolling restart does), start it again on the same port and
    data, and wait until it answers."""
    state = _state_dir(state_dir)
    with _locked(state):
        _require(_kafka_pid(_KafkaPaths.of(state)), "Kafka")
        _kafka_down(state)
        _kafka_up(state)()


def pause_postgres(state_dir: Path | None = None) -> None:
    """SIGSTOP the postmaster and all its backends."""
    pid = _require(_pg_pid(_PgPaths.of(_state_dir(state_dir))), "PostgreSQL")
    _pg_signal_tree(pid, signal.SIGSTOP)


def resume_postgres(state_dir: Path | None = None) -> None:
    """SIGCONT the backends and the postmaster."""
    pid = _require(_pg_pid(_PgPaths.of(_state_dir(state_dir))), "PostgreSQL")
    _pg_signal_tree(pid, signal.SIGCONT)


def _print_env(out: TextIO, ep: Endpoints, export: bool) -> None:
    for key, value in ep.as_env().items():
        out.write(f"{'export ' if export else ''}{key}={shlex.quote(value)}\n")


_USAGE: Final = (
    "usage: python -m rapport.stack "
    "{up|down|status|env|pause-kafka|resume-kafka|pause-postgres|resume-postgres}"
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if len(args) != 1 else sys.stdout)
        return 2 if len(args) != 1 else 0
    command = args[0]
    actions: dict[str, Callable[[], None]] = {
        "pause-kafka": pause_kafka,
        "resume-kafka": resume_kafka,
        "pause-postgres": pause_postgres,
        "resume-postgres": resume_postgres,
        "down": down,
    }
    try:
        if command == "up":
            _print_env(sys.stdout, up(), export=False)
        elif command == "env":
            _print_env(sys.stdout, endpoints(), export=True)
        elif command == "status":
            for name, state in status().items():
                print(f"{name}: {state}")
        elif command in actions:
            actions[command]()
        else:
            print(_USAGE, file=sys.stderr)
            return 2
    except StackError as exc:
        print(f"rapport.stack {command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. an unwritable state dir: still one line, no traceback
        print(f"rapport.stack {command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rapport.stack {command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
