"""analytics: the client's age group on each episode (clinical cutoffs by age)

Revision ID: analytics_0008
Revises: analytics_0007
Create Date: 2026-12-04 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "analytics_0008"
down_revision: str | None = "analytics_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("analytics_episodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("age_group", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("analytics_episodes", schema=None) as batch_op:
        batch_op.drop_column("age_group")
