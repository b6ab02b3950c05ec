"""feedback: sessions as facts (issue 16): each session's status (scheduled, attended, missed,
cancelled by the client or the clinic), its booked time, a cancellation's notice, whether a
feedback response implied the attendance; the episode's phase as intake publishes it. The
``attended`` flag becomes the status (attended or missed). Both tables are already under
row-level security (feedback_0004).

Revision ID: feedback_0011
Revises: feedback_0009
Create Date: 2026-12-04 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "feedback_0011"
down_revision: str | None = "feedback_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback_sessions") as table:
        table.add_column(
            sa.Column(
                "status",
                sqlmodel.sql.sqltypes.AutoString(length=24),
                nullable=False,
                server_default="attended",
            )
        )
        table.add_column(
            sa.Column("scheduled_for", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        table.add_column(sa.Column("notice_hours", sa.Integer(), nullable=True))
        table.add_column(
            sa.Column("cancelled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        table.add_column(
            sa.Column(
                "implied_by_feedback", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        table.add_column(
            sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    op.execute("UPDATE feedback_sessions SET status = 'missed' WHERE NOT attended")
    with op.batch_alter_table("feedback_sessions") as table:
        table.alter_column("status", server_default=None)
        table.alter_column("implied_by_feedback", server_default=None)
        table.drop_column("attended")
    with op.batch_alter_table("feedback_episodes") as table:
        table.add_column(
            sa.Column(
                "phase",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="matched",
            )
        )
        table.add_column(sa.Column("phase_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    with op.batch_alter_table("feedback_episodes") as table:
        table.alter_column("phase", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("feedback_episodes") as table:
        table.drop_column("phase_at")
        table.drop_column("phase")
    with op.batch_alter_table("feedback_sessions") as table:
        table.add_column(
            sa.Column("attended", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.execute("UPDATE feedback_sessions SET attended = (status = 'attended')")
    with op.batch_alter_table("feedback_sessions") as table:
        table.alter_column("attended", server_default=None)
        for column in (
            "recorded_at",
            "implied_by_feedback",
            "cancelled_at",
            "notice_hours",
            "scheduled_for",
            "status",
        ):
            table.drop_column(column)
