"""Rapport services as separate OS processes (``rapport serve <service>``), as in production."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.settings import Settings
from tests.support.receiver import _free_port
from tests.support.waiting import eventually


def service_env(settings: Settings, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "RAPPORT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "RAPPORT_DATABASE_URL": settings.database_url,
            "RAPPORT_REDIS_URL": settings.redis_url,
            "RAPPORT_TOPIC_PREFIX": settings.topic_prefix,
            "RAPPORT_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "RAPPORT_HTTP_PORT": str(port),
            "RAPPORT_ALLOW_PRIVATE_WEBHOOKS": "true"
            if settings.allow_private_webhooks
            else "false",
            "RAPPORT_RELAY_IDLE_SECONDS": str(settings.relay_idle_seconds),
        }
    )
    return env


@dataclass
class ServiceProcess:
    service: str
    settings: Settings
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    # More RAPPORT_* settings for this process (e.g. notify's send timeout).
    extra_env: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        self.port = self.port or _free_port()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rapport.cli", "serve", self.service],
            env={**service_env(self.settings, self.port), **self.extra_env},
            stdout=log,
            stderr=log,
        )
        await eventually(
            self.ready,
            timeout=60,
            interval=0.2,
            what=f"{self.service} /readyz (log: {self.log_path})",
        )

    async def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.service} exited with {self.process.returncode}:\n"
                + self.log_path.read_text()[-3000:]
            )
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def ensure_stopped(self) -> None:
        """For test teardown: whatever happened, leave no process behind."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no final commit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> bool:
        """SIGTERM; True when the service shut down gracefully (uvicorn re-raises the signal
        after its shutdown, so the exit status itself is -SIGTERM either way)."""
        assert self.process is not None
        before = self.log_path.read_text().count('"services stopped"')
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        return self.log_path.read_text().count('"services stopped"') == before + 1

    async def metric(self, name: str, **labels: str) -> float:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"http://127.0.0.1:{self.port}/metrics")).text
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{re.escape(name)}\{{(.*)\}} ([0-9.eE+-]+)$", line)
            if not match:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total
