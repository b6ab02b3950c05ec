"""``rapport demo``: a simulated counselling network, end to end, through the real services.

All four services run in this process (the embedded default: in-process broker, SQLite,
in-memory Redis; or a real Kafka/PostgreSQL/Redis with ``--kafka``, ``--database-url``,
``--redis-url``). The simulator (``rapport.simulate``) supplies sites, therapists and clients;
``rapport.simulate_live`` drives them through the HTTP APIs week by week (intake → matching →
sessions → feedback → analytics → notifications); a local receiver plays the clinics'
front-end and verifies every signed webhook. The same clients then go through the
counterfactual arms offline (``rapport.simulate_arms``), their diaries of booked sessions
through the attendance rules offline (``rapport.simulate_attendance``), and ``rapport.report``
writes the summary and the HTML report from what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import event, func, select
from sqlmodel import col

import services
from rapport import report, simulate_arms, simulate_attendance
from rapport.receiver import Receiver, free_port, serve
from rapport.simulate import Network, build_network
from rapport.simulate_live import AlertInbox, LiveDriver
from shared.auth import mint_token
from shared.host import Host
from shared.logs import configure_logging
from shared.settings import Settings, SettingsError, load_settings


def _throwaway_sqlite(dbapi_connection: Any, _: Any) -> None:
    """The demo's SQLite files are thrown away after the run: commits need not wait for the
    disk (WAL with synchronous=NORMAL stays consistent; only a power cut could lose the last
    commits)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def settled(host: Host, quiet_seconds: float, endpoints: set[str]) -> Callable[[], Awaitable[None]]:
    """Wait until every outbox is relayed and every webhook to this run's ``endpoints``
    delivered, twice in a row ``quiet_seconds`` apart (on a real Kafka an event may be between
    two services; a real database may hold earlier runs' endpoints, retrying)."""
    from services.notify.models import NotifyDelivery

    async def busy() -> bool:
        for runtime in host.runtimes.values():
            if await runtime.relay.pending():
                return True
        notify = host.runtimes["notify"]
        async with notify.sessionmaker() as session:
            waiting = await session.scalar(
                select(func.count())
                .select_from(NotifyDelivery)
                .where(
                    col(NotifyDelivery.channel) == "webhook",
                    col(NotifyDelivery.recipient).in_([f"endpoint:{e}" for e in endpoints]),
                    col(NotifyDelivery.status).in_(("pending", "sending")),
                )
            )
        return bool(waiting)

    async def wait() -> None:
        deadline = time.monotonic() + 120
        quiet = 0
        while quiet < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the services did not settle within 120 s")
            quiet = 0 if await busy() else quiet + 1
            await asyncio.sleep(quiet_seconds)

    return wait


@contextlib.contextmanager
def _week_bar(console: Console, weeks: int, shown: bool) -> Iterator[Callable[[str, int], None]]:
    """A progress bar of the weeks of sessions; yields the driver's progress callback (a line
    per week when the console is not a terminal)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not shown,
    ) as bar:
        task = bar.add_task("weeks of sessions", total=weeks)

        def progress(what: str, n: int) -> None:
            if what != "week":
                return
            bar.update(task, completed=n)
            if shown and not console.is_terminal:
                console.print(f"  week {n}/{weeks} done")

        yield progress


def _print_how_to_try(console: Console, settings: Settings, network: Network, base: str) -> None:
    """With ``--serve``: where the API runs, a clinical lead's token and requests to try."""
    token = mint_token(settings, "lead", "clinical_lead", [s.id for s in network.sites])
    site = network.sites[0].id
    auth = '-H "Authorization: Bearer $TOKEN"'
    tries = [
        f"/analytics/alerts?site_id={site}",
        f"/analytics/sites/{site}/summary",
        f"/intake/therapists?site_id={site}",
        f"/notify/deliveries?site_id={site}",
    ]
    console.print(
        f"\nThe API keeps running at {base} (Ctrl-C to stop). A clinical lead's "
        f"development token for every site:\n  export TOKEN={token}\nTry:\n"
        + "".join(f"  curl -s {auth} '{base}{path}'\n" for path in tries)
        + f"  curl -s {auth} '{base}/analytics/sites/{site}/report' > site.html\n"
        f"  {base}/docs in a browser (OpenAPI). Other roles: rapport token "
        f"--role therapist --sites {site} --sub th-001",
        highlight=False,
        markup=False,
        soft_wrap=True,  # a token broken over two lines cannot be copied
    )


async def _host(settings: Settings, embedded: bool) -> Host:
    """The four services hosted in this process. On a real database every service's schema is
    first brought to head (idempotent), as the owner; the services then run as the app role."""
    if not embedded:
        from services import migrate

        for name in services.NAMES:
            await asyncio.to_thread(
                migrate,
                name,
                settings.migration_database_url_for(name),
                settings.database_url_for(name),
                settings.topic_prefix,
            )
    host = Host(settings, services.definitions(), embedded=embedded, create_tables=embedded)
    if embedded:
        for runtime in host.runtimes.values():
            event.listen(runtime.engine.sync_engine, "connect", _throwaway_sqlite)
    return host


async def run(args: argparse.Namespace, settings: Settings, console: Console) -> report.Result:
    """Run the network through the services hosted here, write the report, return the result
    (with ``--serve``: only once the API is stopped)."""
    out = Path(args.out)
    network = build_network(
        seed=args.seed,
        sites=args.sites,
        therapists=args.therapists,
        clients=args.clients,
        weeks=args.weeks,
    )
    inbox = AlertInbox()
    receiver = Receiver(inbox, {})
    receiver_port = free_port()
    hook_server, hook_task = await serve(receiver.app(), receiver_port)

    embedded = not args.kafka
    host = await _host(settings, embedded)
    app = host.http_app()
    started = time.perf_counter()
    api_server: uvicorn.Server | None = None
    api_task: asyncio.Task[None] | None = None
    base = f"http://127.0.0.1:{args.port}"
    if args.serve:
        api_server, api_task = await serve(app, args.port)
    else:
        await host.start()
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("faststream"):  # the broker's per-message lines, set up at start
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://rapport", timeout=60
        ) as http:
            stack = (
                "embedded (in-process broker, SQLite, in-memory Redis)"
                if embedded
                else f"Kafka {settings.kafka_bootstrap}"
            )
            console.print(
                f"[bold]Rapport demo[/bold] — {len(network.sites)} sites, "
                f"{len(network.therapists)} therapists, {len(network.clients)} clients, "
                f"{network.weeks} weeks; {stack}"
            )
            with _week_bar(console, network.weeks, args.progress) as progress:
                endpoints: set[str] = set()
                driver = LiveDriver(
                    http,
                    settings,
                    network,
                    inbox,
                    settled(host, 0.05 if embedded else 0.8, endpoints),
                    progress,
                    # One process, one core's worth of work: overlapping requests only adds
                    # switching (measured); a real stack has network waits worth overlapping.
                    concurrency=1 if embedded else 8,
                )
                receiver.secrets.update(
                    await driver.set_up_sites(
                        lambda site: f"http://127.0.0.1:{receiver_port}/hooks/{site}"
                    )
                )
                endpoints |= driver.webhook_ids
                live = await driver.run_weeks()
            observed = await report.observe(http, settings, network, live)
        simulated = time.perf_counter() - started
        arms = simulate_arms.run_all(network, live)
        attendance = simulate_attendance.figures(network, live)
        result = report.Result(
            network, live, observed, arms, inbox, simulated, stack, attendance=attendance
        )
        written = report.write(result, out)
        report.print_summary(result, console)
        console.print(
            f"\nReport: [bold]{written.resolve()}[/bold]  ({simulated:.0f} s)", soft_wrap=True
        )
        if args.serve:
            _print_how_to_try(console, settings, network, base)
            assert api_task is not None
            await api_task
    finally:
        if api_server is not None and api_task is not None:
            api_server.should_exit = True
            await api_task
        else:
            await host.stop()
        hook_server.should_exit = True
        await hook_task
    return result


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    db_dir = out / "db"
    if db_dir.exists():
        shutil.rmtree(db_dir)
    db_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, object] = {"allow_private_webhooks": True, "log_level": "warning"}
    if args.kafka:
        overrides.update(kafka_bootstrap=args.kafka)
        if args.database_url:
            overrides["database_url"] = args.database_url
        if args.migration_database_url:
            overrides["migration_database_url"] = args.migration_database_url
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
    # The demo's own output is the progress and the summary: FastStream's per-message lines
    # and aiokafka's retried metadata errors while fresh topics elect leaders are noise here.
    for name in ("faststream", "faststream.access", "faststream.access.kafka"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    console = Console(stderr=False)
    try:
        result = asyncio.run(run(args, settings, console))
    except KeyboardInterrupt:
        return 130
    except SettingsError as error:  # e.g. the database's tables belong to another deployment
        print(f"rapport: bad setting: {error}", file=sys.stderr)
        return 2
    return 0 if result.inbox.rejected == 0 else 1
