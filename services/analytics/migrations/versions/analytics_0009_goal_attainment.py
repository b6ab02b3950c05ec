"""analytics: whether a closed episode's client reached a goal reliably (goal attainment joins
the therapist effectiveness figures; null for an episode without goal ratings)

Revision ID: analytics_0009
Revises: analytics_0008
Create Date: 2026-12-04 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "analytics_0009"
down_revision: str | None = "analytics_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "analytics_closed_episodes", sa.Column("goal_attained", sa.Boolean(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("analytics_closed_episodes", "goal_attained")
