"""The command line: ``python -m rapport.stack up|down|status|env|pause-kafka|...``."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import Final, TextIO

from rapport.stack.config import Endpoints, endpoints
from rapport.stack.errors import StackError
from rapport.stack.lifecycle import (
    down,
    pause_kafka,
    pause_postgres,
    resume_kafka,
    resume_postgres,
    status,
    up,
)


def _print_env(out: TextIO, ep: Endpoints, export: bool) -> None:
    for key, value in ep.as_env().items():
        out.write(f"{'export ' if export else ''}{key}={shlex.quote(value)}\n")


_USAGE: Final = (
    "usage: python -m rapport.stack "
    "{up|down|status|env|pause-kafka|resume-kafka|pause-postgres|resume-postgres}"
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if len(args) != 1 else sys.stdout)
        return 2 if len(args) != 1 else 0
    command = args[0]
    actions: dict[str, Callable[[], None]] = {
        "pause-kafka": pause_kafka,
        "resume-kafka": resume_kafka,
        "pause-postgres": pause_postgres,
        "resume-postgres": resume_postgres,
        "down": down,
    }
    try:
        if command == "up":
            _print_env(sys.stdout, up(), export=False)
        elif command == "env":
            _print_env(sys.stdout, endpoints(), export=True)
        elif command == "status":
            for name, state in status().items():
                print(f"{name}: {state}")
        elif command in actions:
            actions[command]()
        else:
            print(_USAGE, file=sys.stderr)
            return 2
    except StackError as exc:
        print(f"rapport.stack {command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. an unwritable state dir: still one line, no traceback
        print(f"rapport.stack {command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rapport.stack {command}: interrupted", file=sys.stderr)
        return 130
    return 0
