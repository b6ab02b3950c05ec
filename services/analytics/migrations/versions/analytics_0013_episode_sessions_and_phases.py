"""analytics: for an episode's timeline and chart, how each of its sessions turned out
(``session.attended|missed|cancelled``) and its phase changes (``episode.phase_changed``)

Revision ID: analytics_0013
Revises: analytics_0012
Create Date: 2026-12-04 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "analytics_0013"
down_revision: str | None = "analytics_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SESSIONS = "analytics_episode_sessions"
PHASES = "analytics_episode_phase_changes"


def text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        SESSIONS,
        sa.Column("episode_id", text(64), nullable=False),
        sa.Column("session_number", sa.Integer(), nullable=False),
        sa.Column("site_id", text(64), nullable=False),
        sa.Column("status", text(24), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("implied_by_feedback", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("episode_id", "session_number"),
    )
    op.create_index(f"ix_{SESSIONS}_site_id", SESSIONS, ["site_id"], unique=False)
    op.create_table(
        PHASES,
        sa.Column("episode_id", text(64), nullable=False),
        sa.Column("to_phase", text(20), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("site_id", text(64), nullable=False),
        sa.Column("from_phase", text(20), nullable=True),
        sa.Column("reason", text(64), nullable=False),
        sa.Column("gap_days", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("episode_id", "to_phase", "at"),
    )
    op.create_index(f"ix_{PHASES}_site_id", PHASES, ["site_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for table in (SESSIONS, PHASES):
            for statement in site_rls(table):
                op.execute(statement)


def downgrade() -> None:
    for table in (PHASES, SESSIONS):
        if op.get_bind().dialect.name == "postgresql":
            for statement in no_site_rls(table):
                op.execute(statement)
        op.drop_table(table)
