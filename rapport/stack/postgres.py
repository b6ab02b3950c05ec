"""PostgreSQL: a cluster of its own in the state dir, run as the ``postgres`` OS user when
we are root (initdb refuses root), with the owner and application roles and the database
the services use."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rapport.stack.config import (
    PG_APP_PASSWORD,
    PG_APP_USER,
    PG_DATABASE,
    PG_PASSWORD,
    PG_USER,
    listen_addresses,
    postgres_port,
)
from rapport.stack.errors import StackError
from rapport.stack.packages import apt_install
from rapport.stack.processes import (
    STOP_TIMEOUT,
    alive,
    children,
    cmdline,
    is_root,
    port_taken,
    read_pid,
    run_logged,
    send_signal,
    spawn,
    stop_pids,
    user_env,
    user_ids,
)

PG_OS_USER: Final = "postgres"
PG_START_TIMEOUT: Final = 60.0

_POSTGRES_SETTINGS: Final = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",
)


def _bindir(state: Path) -> Path:
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
    if not is_root():
        raise StackError(
            "PostgreSQL server binaries not found: install them (apt-get install -y postgresql)"
        )
    apt_install(state, "postgresql")
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True):
        if complete(d):
            return d
    raise StackError("PostgreSQL binaries not found even after apt-get install postgresql")


def _os_user() -> str | None:
    """The OS user to run PostgreSQL as (initdb refuses root), None for ourselves."""
    if not is_root():
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
class PgPaths:
    root: Path  # owned by the postgres OS user
    data: Path
    sock: Path
    done: Path
    pid: Path
    log: Path

    @classmethod
    def of(cls, state: Path) -> PgPaths:
        root = state / "postgres"
        if is_root() and not _user_can_enter(PG_OS_USER, state):
            # e.g. a state dir under /root: keep the cluster where postgres can reach it
            digest = hashlib.sha256(str(state).encode()).hexdigest()[:12]
            root = Path("/var/tmp") / f"rapport-stack-pg-{digest}"
        sock = root / "sock"
        if len(f"{sock}/.s.PGSQL.{postgres_port()}") > 100:  # sun_path limit
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


def _pid(pp: PgPaths) -> int | None:
    pid = read_pid(pp.data / "postmaster.pid")
    if pid is not None and alive(pid) and "postgres" in cmdline(pid):
        return pid
    pid = read_pid(pp.pid)  # postmaster.pid may not be written yet during startup
    if pid is not None and alive(pid) and str(pp.data) in cmdline(pid):
        return pid
    return None


def running_pid(state: Path) -> int | None:
    """The postmaster's pid for this state dir, None if it does not run."""
    return _pid(PgPaths.of(state))


def _leftovers(pp: PgPaths) -> list[int]:
    """Live processes working in the data dir (orphaned backends of a dead postmaster)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")) == pp.data and alive(int(entry.name)):
                    found.append(int(entry.name))
    return found


def _clear_stale(pp: PgPaths) -> None:
    """Before starting a postmaster: end orphaned backends and drop a dead one's lock file.

    PostgreSQL itself refuses to start while the pid in postmaster.pid (or in the
    socket's lock file) exists, which includes a killed postmaster that init has not
    reaped yet.
    """
    leftovers = _leftovers(pp)
    if leftovers:
        stop_pids(leftovers, signal.SIGKILL, 10)
    for lock in [pp.data / "postmaster.pid", *pp.sock.glob(".s.PGSQL.*.lock")]:
        pid = read_pid(lock)
        if pid is not None and not alive(pid):
            lock.unlink(missing_ok=True)


def answering(port: int, timeout: float = 2.0) -> bool:
    """True when the postmaster answers an SSLRequest (no login needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">ii", 8, 80877103))
            return sock.recv(1) in (b"N", b"S")
    except OSError:
        return False


def _psql(
    bindir: Path, pp: PgPaths, port: int, sql: str, user: str | None
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
    uid, gid, groups = user_ids(user)
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=pp.root,
        env=user_env(user),
        timeout=30,
        check=False,
        user=uid,
        group=gid,
        extra_groups=groups,
    )


# --------------------------------------------------------------------------- start


def start(state: Path) -> None:
    """Start PostgreSQL unless it runs and answers (waking it if paused), then make sure
    the roles and the database exist and the owner can log in over TCP."""
    pp = PgPaths.of(state)
    port = postgres_port()
    user = _os_user()
    pid = _pid(pp)
    if pid is not None:
        signal_tree(pid, signal.SIGCONT)
        if answering(port):
            bindir = _bindir(state)
            _wait_and_provision(bindir, pp, port, user, pid)
            return
    elif port_taken(port):
        raise StackError(
            f"cannot start PostgreSQL: 127.0.0.1:{port} is already taken by another process "
            f"(set RAPPORT_STACK_PG_PORT)"
        )
    bindir = _bindir(state)
    _prepare_cluster(bindir, pp, user)
    if pid is None:
        pid = _launch(bindir, pp, port, user)
    _wait_and_provision(bindir, pp, port, user, pid)


def _prepare_cluster(bindir: Path, pp: PgPaths, user: str | None) -> None:
    """The cluster's directories, and its data: initdb once, else a check that the data is
    of the server's major version."""
    for d in (pp.root, pp.sock):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700 if d == pp.root else 0o755)
        _chown(d, user)
    if not (pp.done.is_file() and (pp.data / "PG_VERSION").is_file()):
        pp.done.unlink(missing_ok=True)
        if pp.data.exists():
            shutil.rmtree(pp.data)  # left over from an interrupted initdb
        run_logged(
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


SAME_NETWORKS: Final = "host all all samenet scram-sha-256"


def allow_same_networks(pp: PgPaths) -> None:
    """With a stack host besides loopback, clients on its networks (containers on a bridge)
    may log in with a password, as on loopback (initdb's pg_hba.conf allows loopback only)."""
    hba = pp.data / "pg_hba.conf"
    lines = hba.read_text().splitlines()
    if len(listen_addresses()) > 1 and SAME_NETWORKS not in lines:
        hba.write_text("\n".join([*lines, SAME_NETWORKS, ""]))


def _launch(bindir: Path, pp: PgPaths, port: int, user: str | None) -> int:
    """Spawn the postmaster on 127.0.0.1 (and the stack host):``port``; its pid."""
    pp.pid.unlink(missing_ok=True)
    _clear_stale(pp)
    allow_same_networks(pp)
    args = [
        str(bindir / "postgres"),
        "-D",
        str(pp.data),
        "-p",
        str(port),
        "-c",
        f"listen_addresses={','.join(listen_addresses())}",
        "-c",
        f"unix_socket_directories={pp.sock}",
    ]
    for setting in _POSTGRES_SETTINGS:
        args += ["-c", setting]
    pid = spawn("PostgreSQL", args, pp.log, user=user, cwd=pp.root)
    pp.pid.write_text(f"{pid}\n")
    return pid


def _wait_and_provision(bindir: Path, pp: PgPaths, port: int, user: str | None, pid: int) -> None:
    _wait(bindir, pp, port, user, pid)
    _provision(bindir, pp, port, user)
    _check_login(bindir, pp, port, user)


def _wait(bindir: Path, pp: PgPaths, port: int, user: str | None, pid: int) -> None:
    """Until the postmaster answers a query on its socket (then its pid is recorded)."""
    deadline = time.monotonic() + PG_START_TIMEOUT
    last = ""
    while True:
        if not alive(pid):
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


def _provision(bindir: Path, pp: PgPaths, port: int, user: str | None) -> None:
    """The owner role, the application role (no superuser, no BYPASSRLS) and the database."""
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
    proc = _psql(bindir, pp, port, provision, user)
    if proc.returncode != 0:
        raise StackError(f"creating role {PG_USER} failed: {_last_line(proc.stderr)}")
    proc = _psql(bindir, pp, port, f"SELECT 1 FROM pg_database WHERE datname='{PG_DATABASE}'", user)
    if proc.returncode != 0:
        raise StackError(f"querying pg_database failed: {_last_line(proc.stderr)}")
    if proc.stdout.strip() != "1":
        proc = _psql(bindir, pp, port, f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}", user)
        if proc.returncode != 0 and "already exists" not in proc.stderr:
            raise StackError(f"creating database {PG_DATABASE} failed: {_last_line(proc.stderr)}")


def _check_login(bindir: Path, pp: PgPaths, port: int, user: str | None) -> None:
    """The honest check: the URL the services use, over TCP with the password."""
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


# --------------------------------------------------------------------------- signals and stop


def signal_tree(pid: int, sig: signal.Signals) -> None:
    """Signal the postmaster and all its backends (postmaster first when stopping)."""
    if sig == signal.SIGSTOP:
        send_signal(pid, sig)  # no new backends forked from here on
        for kid in children(pid):
            send_signal(kid, sig)
    else:
        for kid in children(pid):
            send_signal(kid, sig)
        send_signal(pid, sig)


def stop(state: Path) -> None:
    """A fast shutdown (open sessions rolled back), then any orphaned backend killed."""
    pp = PgPaths.of(state)
    pid = _pid(pp)
    if pid is not None:
        postmaster = pid
        kids = children(postmaster)
        try:
            # SIGINT = "fast" shutdown: roll back open sessions rather than wait for them
            stop_pids(
                [postmaster],
                signal.SIGINT,
                STOP_TIMEOUT,
                extra=lambda: children(postmaster) + kids,
            )
            stop_pids([*kids, *_leftovers(pp)], signal.SIGKILL, 10)
        except StackError as exc:
            raise StackError(f"stopping PostgreSQL: {exc}; read {pp.log}") from None
    pp.pid.unlink(missing_ok=True)
