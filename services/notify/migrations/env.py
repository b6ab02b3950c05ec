"""Alembic environment of the notify service (see shared.migrations)."""

from shared.migrations import run_env

run_env("notify")
