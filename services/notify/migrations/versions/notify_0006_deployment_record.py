"""notify: the topic prefix of the deployment the tables belong to

Revision ID: notify_0006
Revises: notify_0005
Create Date: 2026-12-03 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notify_0006"
down_revision: str | None = "notify_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row, written by `rapport migrate` or the first start (shared/deployment.py).
    op.create_table(
        "notify_deployment",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("topic_prefix", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("notify_deployment")
