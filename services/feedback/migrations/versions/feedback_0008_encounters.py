"""feedback: the Encounter identifier a front-end registers for a session (issue 20), one per
session, unique per site; under row-level security like every site-scoped table

Revision ID: feedback_0008
Revises: feedback_0007
Create Date: 2026-12-04 20:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "feedback_0008"
down_revision: str | None = "feedback_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_encounters",
        sa.Column("episode_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("session_number", sa.Integer(), nullable=False),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("registered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("registered_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.PrimaryKeyConstraint("episode_id", "session_number"),
        sa.UniqueConstraint("site_id", "system", "value", name="uq_feedback_encounter_identifier"),
    )
    op.create_index("ix_feedback_encounters_site_id", "feedback_encounters", ["site_id"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in site_rls("feedback_encounters"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in no_site_rls("feedback_encounters"):
            op.execute(statement)
    op.drop_index("ix_feedback_encounters_site_id", table_name="feedback_encounters")
    op.drop_table("feedback_encounters")
