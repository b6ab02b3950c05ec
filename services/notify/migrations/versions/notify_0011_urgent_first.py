"""notify: the urgent deliveries that are due, by due time (a partial index), so the
dispatcher claims them ahead of a backlog of routine ones

Revision ID: notify_0011
Revises: notify_0010
Create Date: 2026-12-05 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notify_0011"
down_revision: str | None = "notify_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "notify_deliveries"
INDEX = "ix_notify_deliveries_urgent_due"
URGENT_PENDING = "urgent AND status = 'pending'"


def upgrade() -> None:
    op.create_index(
        INDEX,
        TABLE,
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text(URGENT_PENDING),
        sqlite_where=sa.text(URGENT_PENDING),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
