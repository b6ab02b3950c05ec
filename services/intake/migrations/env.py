"""Alembic environment of the intake service (see shared.migrations)."""

from services.intake.app import definition
from shared.migrations import run_env

definition()  # puts every table the service owns on the metadata Alembic compares
run_env("intake")
