"""``rapport``: run services, the embedded demo, the local stack, migrations, dev tokens."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rapport.arguments import add_network_size

REPO = Path(__file__).resolve().parent.parent


def _settings(**overrides: object) -> object:
    from shared.settings import SettingsError, load_settings

    try:
        return load_settings(**overrides)
    except SettingsError as error:
        print(f"rapport: bad setting: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    import uvicorn

    import services
    from shared.host import Host
    from shared.logs import configure_logging
    from shared.settings import Settings

    names = list(services.NAMES) if args.service == "all" else [args.service]
    overrides: dict[str, object] = {}
    if args.embedded:
        overrides.update(
            redis_url="memory://",
            database_url=args.database_url or "sqlite+aiosqlite:///.rapport/embedded/{service}.db",
        )
    settings = _settings(**overrides)
    assert isinstance(settings, Settings)
    configure_logging("+".join(names), settings.log_level, settings.log_json)
    from shared.settings import SettingsError

    try:
        host = Host(settings, services.definitions(names), embedded=args.embedded)
        # Before serving: tables of another deployment stop the process with one line (the
        # host checks again, and records the prefix where none is, when it starts).
        asyncio.run(host.check_deployment())
    except SettingsError as error:  # a configuration file named by a setting is wrong
        print(f"rapport: bad setting: {error}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        host.http_app(),
        host=args.host or settings.http_host,
        port=args.port or settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    uvicorn.Server(config).run()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    import services
    from services import migrate
    from shared.logs import configure_logging
    from shared.settings import Settings, SettingsError

    settings = _settings()
    assert isinstance(settings, Settings)
    configure_logging("migrate", settings.log_level, settings.log_json)
    for name in args.services or services.NAMES:
        if name not in services.NAMES:
            print(f"rapport: unknown service {name!r}", file=sys.stderr)
            return 2
        # As the tables' owner (RAPPORT_MIGRATION_DATABASE_URL), granting the application
        # role of RAPPORT_DATABASE_URL what it needs.
        try:
            migrate(
                name,
                settings.migration_database_url_for(name),
                settings.database_url_for(name),
                settings.topic_prefix,
            )
        except SettingsError as error:  # the tables belong to another deployment
            print(f"rapport: bad setting: {error}", file=sys.stderr)
            return 2
        print(f"{name}: migrated to head")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from shared.auth import mint_token
    from shared.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    try:
        print(mint_token(settings, args.sub, args.role, args.sites.split(",")))
    except ValueError as error:
        print(f"rapport: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    try:
        import rapport.stack as stack
    except ModuleNotFoundError as error:
        if error.name != "rapport.stack":
            raise
        # The container image leaves the local stack out (it installs packages and runs
        # Kafka, PostgreSQL and Redis as child processes: development only).
        print(
            "rapport: the local stack is not part of this installation (the container image "
            "leaves it out); run `rapport stack` from a source checkout",
            file=sys.stderr,
        )
        return 2
    return stack.main([args.action])


def cmd_docs(args: argparse.Namespace) -> int:
    from rapport.docs import export

    written = export(Path(args.out))
    for path in written:
        print(path)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rapport.demo import run_demo

    return run_demo(args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from rapport.simulate_cli import main as simulate_main

    return simulate_main(args)


def cmd_events(args: argparse.Namespace) -> int:
    from rapport.events import main as events_main

    return events_main(args)


def cmd_replay(args: argparse.Namespace) -> int:
    from rapport.replay import main as replay_main

    return replay_main(args)


def cmd_trajectories(args: argparse.Namespace) -> int:
    from rapport.trajectories.command import main as trajectories_main

    return trajectories_main(args)


def cmd_backfill(args: argparse.Namespace) -> int:
    from rapport.backfill import main as backfill

    return backfill([args.service])


def cmd_settings(_: argparse.Namespace) -> int:
    from shared.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    print(json.dumps(json.loads(settings.model_dump_json()), indent=2))
    return 0


def _add_demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--serve", action="store_true", help="keep the API running afterwards")
    demo.add_argument("--kafka", help="run against a real Kafka (bootstrap servers)")
    demo.add_argument("--database-url", help="with --kafka: the real database (the app role)")
    demo.add_argument(
        "--migration-database-url",
        help="with --kafka: the tables' owner, for migrations (default: --database-url)",
    )
    demo.add_argument("--redis-url", help="with --kafka: the real Redis")
    demo.add_argument("--out", default=".rapport/demo", help="where to write the report")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--port", type=int, default=8000, help="with --serve: the API's port")
    add_network_size(demo)
    demo.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rapport", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service, or all four, with HTTP and Kafka")
    serve.add_argument("service", choices=["intake", "feedback", "analytics", "notify", "all"])
    serve.add_argument(
        "--embedded",
        action="store_true",
        help="in-process broker, SQLite and in-memory Redis (no Kafka needed)",
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--database-url")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="run a simulated counselling network end to end")
    _add_demo_arguments(demo)
    demo.set_defaults(func=cmd_demo)

    from rapport.simulate_cli import add_arguments as add_simulate_arguments

    simulate = sub.add_parser(
        "simulate", help="a simulated network: replay JSONL with labels, or live into a stack"
    )
    add_simulate_arguments(simulate).set_defaults(func=cmd_simulate)

    from rapport.events import add_arguments as add_events_arguments

    events = sub.add_parser("events", help="print events from Kafka topics (no consumer group)")
    add_events_arguments(events).set_defaults(func=cmd_events)

    stack = sub.add_parser("stack", help="local Kafka, PostgreSQL and Redis without Docker")
    stack.add_argument("action", choices=["up", "down", "status", "env"])
    stack.set_defaults(func=cmd_stack)

    migrate = sub.add_parser("migrate", help="apply database migrations (Alembic)")
    migrate.add_argument("services", nargs="*")
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="mint a development staff token")
    token.add_argument("--role", required=True)
    token.add_argument("--sites", required=True, help="comma-separated site ids")
    token.add_argument("--sub", default="dev-user")
    token.set_defaults(func=cmd_token)

    docs = sub.add_parser("docs", help="export event JSON Schemas and AsyncAPI documents")
    docs.add_argument("--out", default=str(REPO / "docs"))
    docs.set_defaults(func=cmd_docs)

    from rapport.replay import add_arguments as add_replay_arguments

    replay = sub.add_parser("replay", help="run the alert rules offline over feedback records")
    add_replay_arguments(replay).set_defaults(func=cmd_replay)

    from rapport.trajectories.command import add_arguments as add_trajectories_arguments

    trajectories = sub.add_parser(
        "trajectories", help="expected trajectories: fit a model from feedback records"
    )
    add_trajectories_arguments(trajectories).set_defaults(func=cmd_trajectories)

    backfill = sub.add_parser(
        "backfill", help="rebuild a service's state from its Kafka topics (service stopped)"
    )
    backfill.add_argument("service", choices=["analytics"])
    backfill.set_defaults(func=cmd_backfill)

    settings = sub.add_parser("settings", help="print the effective settings (secrets hidden)")
    settings.set_defaults(func=cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
