"""intake: the topic prefix of the deployment the tables belong to

Revision ID: intake_0005
Revises: intake_0004
Create Date: 2026-12-03 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0005"
down_revision: str | None = "intake_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row, written by `rapport migrate` or the first start (shared/deployment.py).
    op.create_table(
        "intake_deployment",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("topic_prefix", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("intake_deployment")
