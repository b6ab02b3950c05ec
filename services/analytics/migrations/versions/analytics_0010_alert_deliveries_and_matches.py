"""analytics: for an episode's timeline, the messages about its alerts that were delivered
(``notification.delivered``) and its confirmed matches (the first its match, a later one a
transfer)

Revision ID: analytics_0010
Revises: analytics_0009
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "analytics_0010"
down_revision: str | None = "analytics_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERIES = "analytics_alert_deliveries"
MATCHES = "analytics_episode_matches"


def text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        DELIVERIES,
        sa.Column("delivery_id", text(64), nullable=False),
        sa.Column("alert_id", text(64), nullable=False),
        sa.Column("episode_id", text(64), nullable=False),
        sa.Column("site_id", text(64), nullable=False),
        sa.Column("channel", text(10), nullable=False),
        sa.Column("recipient_role", text(64), nullable=False),
        sa.Column("delivery_kind", text(64), nullable=False),
        sa.Column("delivered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    for column in ("alert_id", "episode_id", "site_id"):
        op.create_index(f"ix_{DELIVERIES}_{column}", DELIVERIES, [column], unique=False)
    op.create_table(
        MATCHES,
        sa.Column("match_id", text(64), nullable=False),
        sa.Column("episode_id", text(64), nullable=False),
        sa.Column("site_id", text(64), nullable=False),
        sa.Column("therapist_id", text(64), nullable=False),
        sa.Column("confirmed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("match_id"),
    )
    for column in ("episode_id", "site_id"):
        op.create_index(f"ix_{MATCHES}_{column}", MATCHES, [column], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for table in (DELIVERIES, MATCHES):
            for statement in site_rls(table):
                op.execute(statement)


def downgrade() -> None:
    for table in (MATCHES, DELIVERIES):
        if op.get_bind().dialect.name == "postgresql":
            for statement in no_site_rls(table):
                op.execute(statement)
        op.drop_table(table)
