"""Alembic environment of the feedback service (see shared.migrations)."""

from shared.migrations import run_env

run_env("feedback")
