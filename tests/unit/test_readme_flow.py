"""The README's curl flow works as written: its shell blocks, run in order by bash against a fresh
``rapport serve all --embedded`` started as the README says, succeed at every request, and the
risk reaches the site's webhook with nothing dead-lettered."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTION = re.compile(r"^### 2\. .*?(?=^### 3\. )", re.S | re.M)
MARKER = "<!-- tests/unit/test_readme_flow.py runs the shell blocks of this section"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
README_API = "127.0.0.1:8000"
README_RECEIVER = ("127.0.0.1:9000", '("127.0.0.1", 9000)')  # its URL, and where it listens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def readme_flow() -> tuple[str, str]:
    """The command that starts the API and the flow's script, as the README has them."""
    section = SECTION.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert section, "README.md has no step 2 followed by a step 3"
    text = section.group(0)
    assert MARKER in text, "the flow's blocks are no longer marked for this test"
    start, _, flow = text.partition(MARKER)
    serve = BLOCK.findall(start)[-1].strip()
    script = "\n".join(BLOCK.findall(flow))
    assert README_API in script and all(r in script for r in README_RECEIVER)
    return serve, script


def _wait_for(predicate: object, what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def api(tmp_path: Path, clean_env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    serve, _ = readme_flow()
    assert serve.startswith("RAPPORT_ALLOW_PRIVATE_WEBHOOKS=true .venv/bin/rapport serve all")
    port = _free_port()
    command = serve.split(" ", 1)[1].replace(
        ".venv/bin/rapport", f"{sys.executable} -m rapport.cli"
    )
    command = command.replace("--port 8000", f"--port {port}")
    log = tmp_path / "serve.log"
    env = {**clean_env, "RAPPORT_ALLOW_PRIVATE_WEBHOOKS": "true"}
    with log.open("w") as out:
        process = subprocess.Popen(
            command.split(), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.HTTPError:
                return process.poll() is not None

        _wait_for(ready, "the embedded API")
        assert process.poll() is None, log.read_text()
        yield f"127.0.0.1:{port}", log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_readme_curl_flow_delivers_the_risk_to_the_sites_webhook(
    tmp_path: Path, clean_env: dict[str, str], api: tuple[str, Path]
) -> None:
    address, serve_log = api
    _, script = readme_flow()
    port = _free_port()
    script = script.replace(README_API, address)
    script = script.replace(README_RECEIVER[0], f"127.0.0.1:{port}")
    script = script.replace(README_RECEIVER[1], f'("127.0.0.1", {port})')
    # Every request of the flow must succeed: curl fails on an HTTP error, and so does the script.
    strict = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'
    # Output to files, not pipes: the receiver the script starts in the background keeps them.
    with (tmp_path / "out").open("w") as stdout, (tmp_path / "err").open("w") as stderr:
        shell = subprocess.Popen(
            ["bash", "-c", strict + script],
            cwd=tmp_path,
            env=clean_env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        shell.wait(timeout=300)
        out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
        assert shell.returncode == 0, f"{out}\n{err}"
        assert "Meets every hard constraint" in err  # the first option's explanation
        assert "rupture high open" in out
        hooks = tmp_path / "hooks.log"

        def risk_delivered() -> bool:
            return hooks.exists() and re.search(r'"urgent":\s*true', hooks.read_text()) is not None

        _wait_for(risk_delivered, "the risk webhook")
        urgent = [x for x in hooks.read_text().splitlines() if re.search(r'"urgent":\s*true', x)]
        assert len(urgent) == 1 and re.search(r'"kind":\s*"risk"', urgent[0]), urgent
    finally:
        os.killpg(shell.pid, signal.SIGTERM)  # the receiver the script left running
    assert "dead-lettered" not in serve_log.read_text()
