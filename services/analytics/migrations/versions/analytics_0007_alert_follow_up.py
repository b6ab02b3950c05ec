"""analytics: an alert's follow-up (seen, closed with a reason) and the actions recorded on it

Revision ID: analytics_0007
Revises: analytics_0006
Create Date: 2026-12-04 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "analytics_0007"
down_revision: str | None = "analytics_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS = "analytics_alert_actions"


def upgrade() -> None:
    with op.batch_alter_table("analytics_alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("closed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )
        batch_op.add_column(
            sa.Column("close_reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
    op.create_table(
        ACTIONS,
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("alert_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("episode_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("alert_id", "episode_id", "site_id"):
        op.create_index(f"ix_{ACTIONS}_{column}", ACTIONS, [column], unique=False)
    op.create_index(
        "ux_analytics_alert_actions_retry", ACTIONS, ["alert_id", "idempotency_key"], unique=True
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in site_rls(ACTIONS):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in no_site_rls(ACTIONS):
            op.execute(statement)
    op.drop_table(ACTIONS)
    with op.batch_alter_table("analytics_alerts", schema=None) as batch_op:
        batch_op.drop_column("close_reason")
        batch_op.drop_column("closed_by")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("seen_at")
