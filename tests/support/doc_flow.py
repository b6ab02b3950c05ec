"""Run a document's shell blocks as written, in order, by bash, against a fresh
``rapport serve all --embedded`` (the README's flow, docs/integration.md): so that what a
newcomer copies works."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
# Every request must succeed: curl fails on an HTTP error, and so does the script.
STRICT = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], bool], what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def shell_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def clean_env() -> dict[str, str]:
    """The caller's environment without RAPPORT_ settings, the venv's binaries first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


@contextmanager
def embedded_api(folder: Path, env: Mapping[str, str], *options: str) -> Iterator[tuple[str, Path]]:
    """``rapport serve all --embedded`` on a free port (webhooks to loopback allowed), until
    the block ends: (its host:port, its log)."""
    port = free_port()
    log = folder / "serve.log"
    command = [sys.executable, "-m", "rapport.cli", "serve", "all", "--embedded", *options]
    command += ["--port", str(port)]
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env={**env, "RAPPORT_ALLOW_PRIVATE_WEBHOOKS": "true"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.HTTPError:
                return process.poll() is not None

        wait_for(ready, "the embedded API")
        assert process.poll() is None, log.read_text()
        yield f"127.0.0.1:{port}", log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def running_script(folder: Path, env: Mapping[str, str], script: str) -> Iterator[Path]:
    """Run ``script`` strictly (:data:`STRICT`) in its own process group; yields the folder
    where ``out`` and ``err`` are written, and ends whatever it left running (a receiver)."""
    # Output to files, not pipes: a receiver the script starts in the background keeps them.
    with (folder / "out").open("w") as stdout, (folder / "err").open("w") as stderr:
        shell = subprocess.Popen(
            ["bash", "-c", STRICT + script],
            cwd=folder,
            env=dict(env),
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        shell.wait(timeout=300)
        out, err = (folder / "out").read_text(), (folder / "err").read_text()
        assert shell.returncode == 0, f"{out}\n{err}"
        yield folder
    finally:
        with suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)
