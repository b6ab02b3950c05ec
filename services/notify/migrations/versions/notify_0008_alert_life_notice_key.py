"""notify: an alert's life names its opening notice, so a step that shows it followed up
(acknowledged, an action recorded, resolved or closed) stops its escalation

Revision ID: notify_0008
Revises: notify_0007
Create Date: 2026-12-04 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "notify_0008"
down_revision: str | None = "notify_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "notify_alert_lives"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.add_column(
            sa.Column("notice_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
        )
        batch_op.create_index(f"ix_{TABLE}_notice_key", ["notice_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_index(f"ix_{TABLE}_notice_key")
        batch_op.drop_column("notice_key")
