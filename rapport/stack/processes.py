"""The servers as processes: spawning them detached, reading pid files and /proc,
signalling, waiting for them to exit, rotating their logs, and the lock that serialises
``up``/``down`` across processes sharing one state dir."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from rapport.stack.errors import StackError

STOP_TIMEOUT: Final = 30.0
LOG_ROTATE_BYTES: Final = 20 * 1024 * 1024


@contextlib.contextmanager
def locked(state: Path) -> Iterator[None]:
    """Serialise up/down across processes sharing one state dir."""
    with open(state / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def is_root() -> bool:
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


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our own child
    return _proc_stat(pid) is not None


def paused(pid: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] in ("T", "t")


def children(pid: int) -> list[int]:
    kids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _proc_stat(int(entry.name))
        if st is not None and st[1] == pid:
            kids.append(int(entry.name))
    return kids


def send_signal(pid: int, sig: signal.Signals) -> None:
    """``os.kill``, ignoring a process that is gone or not ours."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(alive(p) for p in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def _rotate(log: Path) -> None:
    with contextlib.suppress(OSError):
        if log.stat().st_size > LOG_ROTATE_BYTES:
            log.replace(log.with_name(log.name + ".1"))


def user_ids(user: str | None) -> tuple[int | None, int | None, list[int] | None]:
    """(uid, gid, supplementary gids) for subprocess to switch to; all None for ourselves."""
    if user is None:
        return None, None, None
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid, os.getgrouplist(user, pw.pw_gid)


def user_env(user: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if user is not None:
        pw = pwd.getpwnam(user)
        env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user)
    return env


# Runs as an intermediate process: starts the server as its own child and exits
# at once, so the server is re-parented to init and never becomes a zombie or a
# ResourceWarning in the Python process that called up(). Its session is the new
# one the intermediate process was started in.
# It also lifts the open-files limit as far as it may go (a broker holds a file per partition,
# and a long test run creates many topics).
_LAUNCHER: Final = r"""
import os, pwd, resource, subprocess, sys
user, cwd, *cmd = sys.argv[1:]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
for limit in (max(hard, 1048576), hard):
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        break
    except (ValueError, OSError):
        pass
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


def stop_started(what: str, pid: int | None, pid_file: Path, log: Path) -> None:
    """SIGTERM a server this stack started (SIGKILL if it does not exit), then remove its pid
    file; ``pid`` is None when it does not run."""
    if pid is not None:
        try:
            stop_pids([pid], signal.SIGTERM, STOP_TIMEOUT)
        except StackError as exc:
            raise StackError(f"stopping {what}: {exc}; read {log}") from None
    pid_file.unlink(missing_ok=True)


def spawn(
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
                env=env if env is not None else user_env(user),
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


def run_logged(
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
    uid, gid, groups = user_ids(user)
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
                env=env if env is not None else user_env(user),
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


def stop_pids(
    pids: Sequence[int],
    first: signal.Signals,
    timeout: float,
    extra: Callable[[], list[int]] | None = None,
) -> None:
    """Signal ``pids`` with ``first`` (waking them if paused), then SIGKILL after ``timeout``."""
    pids = [p for p in pids if alive(p)]
    if not pids:
        return
    for p in pids:
        send_signal(p, first)
    for p in [*pids, *(extra() if extra else [])]:
        send_signal(p, signal.SIGCONT)  # a SIGSTOPped process only acts on signals when woken
    if _wait_gone(pids, timeout):
        return
    victims = [*pids, *(extra() if extra else [])]
    for p in victims:
        send_signal(p, signal.SIGKILL)
    if not _wait_gone(victims, 10):
        raise StackError(f"pids {victims} did not exit even after SIGKILL")


def port_taken(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
