"""notify: a webhook of an alert's step names its alert and its place in the alert's life, so
the dispatcher holds it while an earlier step's webhook to the same endpoint is unsent (a
partial index of the unsent ones)

Revision ID: notify_0010
Revises: notify_0009
Create Date: 2026-12-04 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "notify_0010"
down_revision: str | None = "notify_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "notify_deliveries"
INDEX = "ix_notify_deliveries_alert_order"
UNSENT_OF_ALERTS = "alert_id IS NOT NULL AND status IN ('pending', 'sending')"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.add_column(
            sa.Column("alert_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("alert_position", sa.Integer(), nullable=True))
    op.create_index(
        INDEX,
        TABLE,
        ["alert_id", "endpoint_id", "alert_position"],
        unique=False,
        postgresql_where=sa.text(UNSENT_OF_ALERTS),
        sqlite_where=sa.text(UNSENT_OF_ALERTS),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_column("alert_position")
        batch_op.drop_column("alert_id")
