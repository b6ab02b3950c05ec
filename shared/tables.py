"""Which tables a service owns: all of them are named ``<service>_…``."""

from __future__ import annotations

from sqlalchemy import Table
from sqlmodel import SQLModel

from shared.outbox import inbox_table, outbox_table


def service_tables(service: str) -> list[Table]:
    prefix = f"{service}_"
    return [t for t in SQLModel.metadata.sorted_tables if t.name.startswith(prefix)]


def messaging_tables(service: str) -> tuple[Table, Table]:
    """The service's outbox and inbox, on the shared metadata so Alembic sees them."""
    return outbox_table(service, SQLModel.metadata), inbox_table(service, SQLModel.metadata)
