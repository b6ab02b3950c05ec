"""``rapport simulate``: a simulated network as replay JSONL with labels, or live into a stack.

* default: the network model (``rapport.simulate``), each client with the first available
  therapist, therapists receiving the alerts the analytics rules raise offline (``--alerts
  off`` for none); records in the replay interchange format (``rapport replay``) and one label
  per simulated event (``rupture``, ``repair``, ``split_alliance``, ``deterioration``,
  ``risk``, ``dropped_out``, ``completed``) with its episode and session;
* ``--validation``: the labelled episodes of ``rapport.simulation`` (labels are the alerts the
  rules must open), with their session lines (attended, missed, cancelled) beside the
  questionnaires; ``--time-zones FILE`` writes the sites' zones for ``rapport replay
  --time-zones``;
* ``--live URL``: drive a running deployment through its HTTP API (dev tokens minted with this
  process's settings, so ``RAPPORT_JWT_SECRET`` must match the deployment's; a local receiver
  takes the webhooks, so the deployment needs ``RAPPORT_ALLOW_PRIVATE_WEBHOOKS=true``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from rapport.arguments import add_network_size


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--seed", type=int, default=7)
    add_network_size(parser)
    parser.add_argument("--out", default="-", help="replay JSONL (default: stdout)")
    parser.add_argument("--labels", help="where to write the labels (JSONL)")
    parser.add_argument("--alerts", choices=["on", "off"], default="on")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="labelled episodes for validating the alert rules (rapport.simulation)",
    )
    parser.add_argument("--live", metavar="URL", help="drive a running deployment's HTTP API")
    parser.add_argument(
        "--time-zones",
        metavar="FILE",
        help="with --validation: where to write the sites' time zones (JSON, for rapport replay "
        "--time-zones)",
    )
    return parser


def _write(path: str, lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def offline(args: argparse.Namespace) -> int:
    from rapport.simulate import build_network, first_available
    from rapport.simulate_arms import sessions

    network = build_network(args.seed, args.sites, args.therapists, args.clients, args.weeks)
    records: list[str] = []
    labels: list[str] = []

    def label(episode_id: str, kind: str, session: int) -> None:
        labels.append(json.dumps({"episode_id": episode_id, "session": session, "kind": kind}))

    alerts_on = args.alerts == "on"
    for step in sessions(network, first_available(network), alerts_on, with_lines=True):
        result = step.result
        if result is not None:
            records.extend(json.dumps(line) for line in step.lines)
            s = result.session_number
            for happened, kind in (
                (result.rupture_started, "rupture"),
                (result.rupture_repaired, "repair"),
                (result.split_started, "split_alliance"),
                (result.risk, "risk"),
            ):
                if happened:
                    label(step.episode_id, kind, s)
            if result.ended:
                label(step.episode_id, result.ended, s)
        if step.last and step.course.outcome().deteriorated:
            label(step.episode_id, "deterioration", step.course.session_number)
    _write(args.out, records)
    if args.labels:
        _write(args.labels, labels)
    print(f"simulate: {len(records)} records, {len(labels)} labels", file=sys.stderr)
    return 0


def validation(args: argparse.Namespace) -> int:
    from rapport.simulation import labels_jsonl, simulate

    network = simulate(seed=args.seed, episodes=args.clients, sites=args.sites)
    _write(args.out, [json.dumps(r) for r in network.lines()])
    if args.labels:
        _write(args.labels, list(labels_jsonl(network.labels())))
    if args.time_zones:
        _write(args.time_zones, [json.dumps(network.time_zones())])
    return 0


async def _live(args: argparse.Namespace) -> int:
    import httpx

    from rapport.receiver import Receiver, free_port, serve
    from rapport.simulate import build_network
    from rapport.simulate_live import AlertInbox, LiveDriver
    from shared.settings import load_settings

    settings = load_settings()
    network = build_network(args.seed, args.sites, args.therapists, args.clients, args.weeks)
    inbox = AlertInbox()
    receiver = Receiver(inbox, {})
    port = free_port()
    server, task = await serve(receiver.app(), port)

    async def quiet() -> None:
        # No access to the deployment's outboxes: wait until no webhook arrived for 2 s.
        deadline = time.monotonic() + 60
        last, still = len(inbox.received), 0
        while still < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            still = still + 1 if len(inbox.received) == last else 0
            last = len(inbox.received)

    try:
        async with httpx.AsyncClient(base_url=args.live, timeout=60) as http:
            driver = LiveDriver(http, settings, network, inbox, quiet)
            receiver.secrets.update(
                await driver.set_up_sites(lambda site: f"http://127.0.0.1:{port}/hooks/{site}")
            )
            run = await driver.run_weeks()
    finally:
        server.should_exit = True
        await task
    summary: dict[str, Any] = {
        "matched": len(run.matches),
        "sessions": sum(c.session_number for c in run.courses.values()),
        "responses": run.responses,
        "webhooks": len(inbox.received),
        "webhooks_rejected": inbox.rejected,
    }
    print(json.dumps(summary))
    return 0


def main(args: argparse.Namespace) -> int:
    if args.live:
        return asyncio.run(_live(args))
    if args.validation:
        return validation(args)
    return offline(args)
