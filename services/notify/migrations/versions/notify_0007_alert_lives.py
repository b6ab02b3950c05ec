"""notify: the steps of each alert's life announced so far (each once, in order; an alert that
ended is never reopened, and digests leave it out)

Revision ID: notify_0007
Revises: notify_0006
Create Date: 2026-12-04 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "notify_0007"
down_revision: str | None = "notify_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "notify_alert_lives"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("alert_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("announced", sa.JSON(), nullable=True),
        sa.Column("actions", sa.Integer(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_index(f"ix_{TABLE}_site_id", TABLE, ["site_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for statement in site_rls(TABLE):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in no_site_rls(TABLE):
            op.execute(statement)
    op.drop_index(f"ix_{TABLE}_site_id", table_name=TABLE)
    op.drop_table(TABLE)
