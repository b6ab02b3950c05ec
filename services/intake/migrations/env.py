"""Alembic environment of the intake service (see shared.migrations)."""

from shared.migrations import run_env

run_env("intake")
