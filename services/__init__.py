"""The four Rapport services: intake, feedback, analytics, notify."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.runtime import ServiceDefinition

NAMES = ("intake", "feedback", "analytics", "notify")


def definitions(names: tuple[str, ...] | list[str] = NAMES) -> list[ServiceDefinition]:
    """Fresh definitions of the named services (each call builds new ones)."""
    from services.analytics.app import definition as analytics
    from services.feedback.app import definition as feedback
    from services.intake.app import definition as intake
    from services.notify.app import definition as notify

    factories = {"intake": intake, "feedback": feedback, "analytics": analytics, "notify": notify}
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; one of {', '.join(NAMES)}")
    return [factories[n]() for n in names]


def migrations_of(name: str) -> Path:
    """The service's Alembic history, as its definition hands it over."""
    (definition,) = definitions([name])
    if definition.migrations is None:
        raise ValueError(f"service {name} has no migrations")
    return definition.migrations


def migrate(name: str, migration_url: str, app_url: str, topic_prefix: str | None = None) -> None:
    """``rapport migrate`` for one service (see :func:`shared.migrations.migrate`)."""
    from shared import migrations

    migrations.migrate(name, migrations_of(name), migration_url, app_url, topic_prefix)


def upgrade(name: str, url: str, revision: str = "head") -> None:
    """Upgrade one service's tables to ``revision`` as the owner (no grants, no record)."""
    from shared import migrations

    migrations.upgrade(name, migrations_of(name), url, revision)
