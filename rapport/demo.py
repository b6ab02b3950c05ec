"""``rapport demo``: a small simulated counselling network, end to end, on the embedded default.

Everything goes through the real HTTP API and the real handlers: sites register webhooks,
coordinators open episodes, therapists record each session's SRS (alliance) and PHQ-9
(symptoms), analytics raises alerts, notify delivers signed webhooks to a local receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import services
from services.notify import signing
from shared.auth import mint_token
from shared.host import Host
from shared.logs import configure_logging
from shared.settings import Settings, SettingsError, load_settings

SITES = ("site-north", "site-south", "site-east")


@dataclass
class Receiver:
    """The clinics' front-end: receives webhooks and checks their signatures."""

    secrets: dict[str, str] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        site = request.path_params["site"]
        expected = signing.sign(
            self.secrets[site],
            request.headers["webhook-id"],
            int(request.headers["webhook-timestamp"]),
            body,
        )
        if expected not in request.headers["webhook-signature"].split(" "):
            self.bad_signatures += 1
            return Response(status_code=401)
        self.received.append(json.loads(body))
        return Response(status_code=204)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    return server, task


def _srs(rng: random.Random, level: float) -> dict[str, float]:
    return {
        item: round(min(10.0, max(0.0, rng.gauss(level, 0.3))), 1)
        for item in ("relationship", "goals", "approach", "overall")
    }


def _phq9(rng: random.Random, severity: float, risk: bool) -> dict[str, int]:
    items = {str(i): min(3, max(0, round(rng.gauss(severity, 0.6)))) for i in range(1, 10)}
    items["9"] = 1 if risk else 0
    return items


async def _simulate(
    http: httpx.AsyncClient,
    settings: Settings,
    rng: random.Random,
    clients: int,
    sessions: int,
    progress: bool,
) -> dict[str, Any]:
    def auth(role: str, site: str, sub: str = "demo") -> dict[str, str]:
        return {"Authorization": "Bearer " + mint_token(settings, sub, role, [site])}

    episodes: list[tuple[str, str, str]] = []
    for n in range(clients):
        site = SITES[n % len(SITES)]
        therapist = f"th-{site.split('-')[1]}-{n % 4}"
        opened = await http.post(
            "/intake/episodes",
            headers=auth("intake_coordinator", site),
            json={
                "site_id": site,
                "therapist_id": therapist,
                "client_reference": f"demo-client-{n}",
                "domains": ["depression"],
                "severity": "moderate",
            },
        )
        opened.raise_for_status()
        episodes.append((opened.json()["episode_id"], site, therapist))

    for episode_id, site, therapist in episodes:
        headers = auth("therapist", site, therapist)
        for _ in range(100):
            known = await http.get(f"/feedback/episodes/{episode_id}/responses", headers=headers)
            if known.status_code == 200:
                break
            await asyncio.sleep(0.05)

    recorded = 0
    total = len(episodes) * sessions
    for index, (episode_id, site, therapist) in enumerate(episodes):
        headers = auth("therapist", site, therapist)
        alliance = rng.uniform(8.8, 9.8)
        severity = rng.uniform(1.2, 2.2)
        rupture_at = rng.randint(3, sessions - 2) if rng.random() < 0.3 else None
        repaired = rng.random() < 0.6
        for session_number in range(1, sessions + 1):
            level = alliance
            if rupture_at is not None and session_number >= rupture_at:
                level = (
                    alliance - 2.2 if not repaired or session_number < rupture_at + 2 else alliance
                )
            risk = rng.random() < 0.02
            for instrument, items in (
                ("srs", _srs(rng, level)),
                ("phq-9", _phq9(rng, severity, risk)),
            ):
                response = await http.post(
                    "/feedback/responses",
                    headers=headers,
                    json={
                        "episode_id": episode_id,
                        "session_number": session_number,
                        "respondent_role": "client",
                        "instrument": instrument,
                        "items": items,
                    },
                )
                response.raise_for_status()
            severity = max(0.0, severity - rng.uniform(0.0, 0.25))
            recorded += 1
        if progress:
            done = (index + 1) * sessions
            bar = "#" * int(30 * done / total)
            print(f"\r  sessions recorded [{bar:<30}] {done}/{total}", end="", flush=True)
    if progress:
        print()
    return {"episodes": len(episodes), "sessions": recorded}


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    out = Path(args.out)
    receiver = Receiver()
    receiver_port = _free_port()
    hook_app = Starlette(routes=[Route("/hooks/{site}", receiver.hook, methods=["POST"])])
    hook_server, hook_task = await _serve(hook_app, receiver_port)

    embedded = not args.kafka
    host = Host(settings, services.definitions(), embedded=embedded)
    api_port = args.port if args.serve else _free_port()
    api_server, api_task = await _serve(host.http_app(), api_port)
    base = f"http://127.0.0.1:{api_port}"
    started = time.perf_counter()
    rng = random.Random(args.seed)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for site in SITES:
            admin = {
                "Authorization": "Bearer " + mint_token(settings, "admin", "site_admin", [site])
            }
            hook = await http.post(
                "/notify/webhooks",
                headers=admin,
                json={"site_id": site, "url": f"http://127.0.0.1:{receiver_port}/hooks/{site}"},
            )
            hook.raise_for_status()
            receiver.secrets[site] = hook.json()["secret"]
        print(f"Rapport demo — {'embedded' if embedded else 'real'} stack, API at {base}")
        counts = await _simulate(http, settings, rng, clients=24, sessions=8, progress=True)

        alerts: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alerts = []
            for site in SITES:
                lead = {
                    "Authorization": "Bearer "
                    + mint_token(settings, "lead", "clinical_lead", [site])
                }
                got = await http.get(
                    "/analytics/alerts",
                    headers=lead,
                    params={"site_id": site, "status": "all", "limit": 500},
                )
                got.raise_for_status()
                alerts.extend(got.json())
            opened = len(alerts)
            if opened and len(receiver.received) >= opened:
                break
            await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started

    by_kind = Counter(a["kind"] for a in alerts)
    summary = {
        "sites": len(SITES),
        "episodes": counts["episodes"],
        "sessions": counts["sessions"],
        "alerts_opened": dict(sorted(by_kind.items())),
        "alerts_resolved": sum(
            a["status"] == "resolved" and a["kind"] not in {"risk", "repair"} for a in alerts
        ),
        "webhooks_delivered": len(receiver.received),
        "webhook_signatures_rejected": receiver.bad_signatures,
        "seconds": round(elapsed, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(f"  {'episodes':<28}{summary['episodes']:>8}")
    print(f"  {'sessions with feedback':<28}{summary['sessions']:>8}")
    for kind, n in summary["alerts_opened"].items():
        print(f"  {'alerts: ' + kind:<28}{n:>8}")
    print(f"  {'alerts since resolved':<28}{summary['alerts_resolved']:>8}")
    print(f"  {'signed webhooks delivered':<28}{summary['webhooks_delivered']:>8}")
    print(f"\nSummary written to {out / 'summary.json'} ({summary['seconds']} s).")
    if args.serve:
        token = mint_token(settings, "lead", "clinical_lead", list(SITES))
        print(
            f"\nThe API keeps running at {base} (Ctrl-C to stop). Try:\n"
            f"  curl -H 'Authorization: Bearer {token}' "
            f"'{base}/analytics/alerts?site_id={SITES[0]}'\n  open {base}/docs"
        )
        await api_task
    else:
        api_server.should_exit = True
        await api_task
    hook_server.should_exit = True
    await hook_task
    return 0 if receiver.bad_signatures == 0 else 1


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    db_dir = out / "db"
    if db_dir.exists():
        shutil.rmtree(db_dir)
    overrides: dict[str, object] = {"allow_private_webhooks": True, "log_level": "warning"}
    if args.kafka:
        overrides.update(kafka_bootstrap=args.kafka)
        if args.database_url:
            overrides["database_url"] = args.database_url
        if args.redis_url:
            overrides["redis_url"] = args.redis_url
    else:
        overrides.update(
            database_url=f"sqlite+aiosqlite:///{db_dir}/{{service}}.db", redis_url="memory://"
        )
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        print(f"rapport: bad setting: {error}", file=sys.stderr)
        return 2
    configure_logging("demo", settings.log_level, settings.log_json)
    try:
        return asyncio.run(_main(args, settings))
    except KeyboardInterrupt:
        return 130
