"""Alembic environment of the analytics service (see shared.migrations)."""

from shared.migrations import run_env

run_env("analytics")
