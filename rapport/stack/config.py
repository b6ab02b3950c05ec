"""What the environment configures: the ports, the state and cache directories, and the
endpoints the three servers answer on (reading them starts nothing)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rapport.stack.errors import StackError

REPO_ROOT: Final = Path(__file__).resolve().parent.parent.parent

DEFAULT_KAFKA_PORT: Final = 19092
DEFAULT_PG_PORT: Final = 55432
DEFAULT_REDIS_PORT: Final = 56379

PG_USER: Final = "rapport"  # owns the tables; runs migrations (and the tests' admin work)
PG_PASSWORD: Final = "rapport"
# What the services connect as: not the owner, no BYPASSRLS, so row-level security applies.
PG_APP_USER: Final = "rapport_app"
PG_APP_PASSWORD: Final = "rapport_app"
PG_DATABASE: Final = "rapport"


@dataclass(frozen=True)
class Endpoints:
    """Where the three servers answer."""

    kafka_bootstrap: str
    database_url: str  # as the owner: migrations and administration
    redis_url: str
    app_database_url: str = ""  # as the application role: what the services use

    def as_env(self) -> dict[str, str]:
        return {
            "RAPPORT_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "RAPPORT_DATABASE_URL": self.app_database_url or self.database_url,
            "RAPPORT_MIGRATION_DATABASE_URL": self.database_url,
            "RAPPORT_REDIS_URL": self.redis_url,
        }


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65534:
        raise StackError(f"{name}={raw!r} is out of range")
    return port


def kafka_port() -> int:
    """The broker's port (the KRaft controller listens on the next one)."""
    return _env_port("RAPPORT_STACK_KAFKA_PORT", DEFAULT_KAFKA_PORT)


def postgres_port() -> int:
    return _env_port("RAPPORT_STACK_PG_PORT", DEFAULT_PG_PORT)


def redis_port() -> int:
    return _env_port("RAPPORT_STACK_REDIS_PORT", DEFAULT_REDIS_PORT)


LOOPBACK: Final = "127.0.0.1"


def stack_host() -> str:
    """The address the three servers answer on and Kafka advertises: ``$RAPPORT_STACK_HOST``
    (an IPv4 address of this machine, such as a container bridge's, so that containers on it
    reach the stack; the servers also keep answering on 127.0.0.1), else 127.0.0.1."""
    raw = os.environ.get("RAPPORT_STACK_HOST", "").strip()
    if not raw:
        return LOOPBACK
    try:
        return str(ipaddress.IPv4Address(raw))
    except ValueError:
        raise StackError(f"RAPPORT_STACK_HOST={raw!r} is not an IPv4 address") from None


def listen_addresses() -> list[str]:
    """Where PostgreSQL and Redis listen: loopback, and the stack host if it is another."""
    host = stack_host()
    return [LOOPBACK] if host == LOOPBACK else [LOOPBACK, host]


def endpoints() -> Endpoints:
    """The endpoints for the configured ports and host (does not start anything)."""
    host = stack_host()
    return Endpoints(
        kafka_bootstrap=f"{host}:{kafka_port()}",
        database_url=(
            f"postgresql+asyncpg://{PG_USER}:{PG_PASSWORD}@{host}:{postgres_port()}/{PG_DATABASE}"
        ),
        redis_url=f"redis://{host}:{redis_port()}/0",
        app_database_url=(
            f"postgresql+asyncpg://{PG_APP_USER}:{PG_APP_PASSWORD}@{host}:{postgres_port()}/"
            f"{PG_DATABASE}"
        ),
    )


def state_dir(given: Path | None) -> Path:
    """The state directory (``given``, else ``$RAPPORT_STACK_DIR``, else ``<repo>/.stack``),
    created if missing."""
    if given is not None:
        path = Path(given)
    elif os.environ.get("RAPPORT_STACK_DIR"):
        path = Path(os.environ["RAPPORT_STACK_DIR"])
    else:
        path = REPO_ROOT / ".stack"
    path = path.expanduser().absolute()
    if not path.is_dir():
        try:
            path.mkdir(parents=True)
            path.chmod(0o755)  # the postgres OS user must be able to traverse it
        except FileExistsError:
            pass
        except OSError as exc:
            raise StackError(f"cannot create state dir {path}: {exc.strerror}") from None
    return path


def cache_dir() -> Path:
    """Where downloads are kept across state dirs: ``$RAPPORT_CACHE_DIR`` else
    ``~/.cache/rapport``."""
    raw = os.environ.get("RAPPORT_CACHE_DIR")
    path = Path(raw) if raw else Path.home() / ".cache" / "rapport"
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StackError(f"cannot create cache dir {path}: {exc.strerror}") from None
    return path
