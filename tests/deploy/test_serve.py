"""The image's command, run for real: `rapport serve <service>` starts as its own process for
each of the four services with a production-like environment (as the chart's ConfigMap and
Secrets set it), answers /readyz, /healthz and /metrics against the real Kafka, PostgreSQL and
Redis, passes the Dockerfile's HEALTHCHECK, and shuts down gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from dockerfile_parse import DockerfileParser

from shared.settings import Settings
from tests.deploy.chart import DEPLOY, SERVICES
from tests.support.processes import ServiceProcess


def healthcheck_argv() -> list[str]:
    parsed = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    (healthcheck,) = [i["value"] for i in parsed.structure if i["instruction"] == "HEALTHCHECK"]
    argv: list[str] = json.loads(healthcheck.partition("CMD")[2].strip())
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("rapport")
    assert script.exists(), "the `rapport` console script (the image's ENTRYPOINT)"
    result = subprocess.run(
        [str(script), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for service in SERVICES:
        assert service in result.stdout


async def test_each_service_serves_and_is_ready_on_the_real_stack(
    real_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the chart sets besides the stack endpoints: production mode with real secrets.
    monkeypatch.setenv("RAPPORT_ENVIRONMENT", "production")
    for name in ("RAPPORT_JWT_SECRET", "RAPPORT_PSEUDONYM_KEY", "RAPPORT_ENCRYPTION_KEY"):
        monkeypatch.setenv(name, f"{name.lower()}-for-the-deploy-test-0123456789")
    monkeypatch.setenv("RAPPORT_LOG_JSON", "true")
    processes = [ServiceProcess(s, real_settings, tmp_path / f"{s}.log") for s in SERVICES]
    try:
        await asyncio.gather(*(p.start() for p in processes))
        async with httpx.AsyncClient(timeout=5) as client:
            for process in processes:
                base = f"http://127.0.0.1:{process.port}"
                ready = await client.get(f"{base}/readyz")
                assert ready.status_code == 200, (process.service, ready.text)
                checks = ready.json()["checks"]
                assert checks["kafka"] == "ok" and checks["redis"] == "ok", checks
                assert checks[f"{process.service}.database"] == "ok", checks
                assert (await client.get(f"{base}/healthz")).status_code == 200
                metrics = await client.get(f"{base}/metrics")
                assert metrics.status_code == 200 and "# TYPE" in metrics.text
        for process in processes:
            result = await asyncio.to_thread(
                subprocess.run,
                healthcheck_argv(),
                env={**os.environ, "RAPPORT_HTTP_PORT": str(process.port)},
                capture_output=True,
                timeout=30,
            )
            assert result.returncode == 0, (process.service, result.stderr)
        for process in processes:
            assert await asyncio.to_thread(process.terminate), f"{process.service} shutdown"
    finally:
        for process in processes:
            if process.process is not None and process.process.poll() is None:
                process.kill()
