"""feedback: the client's own goals (issue 19), one row per revision, text sealed under the
client's data key; under row-level security like every site-scoped table

Revision ID: feedback_0007
Revises: feedback_0006
Create Date: 2026-12-04 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "feedback_0007"
down_revision: str | None = "feedback_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_goals",
        sa.Column("goal_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("episode_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("text_sealed", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("changed_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.PrimaryKeyConstraint("goal_id", "revision"),
    )
    op.create_index("ix_feedback_goals_episode_id", "feedback_goals", ["episode_id"])
    op.create_index("ix_feedback_goals_site_id", "feedback_goals", ["site_id"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in site_rls("feedback_goals"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in no_site_rls("feedback_goals"):
            op.execute(statement)
    op.drop_index("ix_feedback_goals_site_id", table_name="feedback_goals")
    op.drop_index("ix_feedback_goals_episode_id", table_name="feedback_goals")
    op.drop_table("feedback_goals")
