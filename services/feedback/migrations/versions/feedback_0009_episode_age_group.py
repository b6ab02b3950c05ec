"""feedback: the client's age group on feedback's episode (from match.confirmed), so that the
clinical range on feedback.recorded is the client's own; nullable (unknown: the general cutoff)

Revision ID: feedback_0009
Revises: feedback_0008
Create Date: 2026-12-04 20:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "feedback_0009"
down_revision: str | None = "feedback_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "feedback_episodes",
        sa.Column("age_group", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("feedback_episodes", "age_group")
