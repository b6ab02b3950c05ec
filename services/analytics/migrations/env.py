"""Alembic environment of the analytics service (see shared.migrations)."""

from services.analytics.app import definition
from shared.migrations import run_env

definition()  # puts every table the service owns on the metadata Alembic compares
run_env("analytics")
