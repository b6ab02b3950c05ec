"""analytics: goal attainment of a closed episode (null without goal ratings); the client's
consent to the network's aggregates (from ``consent.changed``; the episode's client is
analytics_0011's), and whether a score counts in the aggregates; the consents under row-level security

Revision ID: analytics_0012
Revises: analytics_0011
Create Date: 2026-12-04 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "analytics_0012"
down_revision: str | None = "analytics_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sqlmodel.sql.sqltypes.AutoString
CONSENTS = "analytics_consents"


def upgrade() -> None:
    op.add_column(
        "analytics_closed_episodes", sa.Column("goal_attained", sa.Boolean(), nullable=True)
    )
    op.add_column(
        "analytics_scores",
        sa.Column("in_aggregates", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.create_table(
        CONSENTS,
        sa.Column("site_id", TEXT(length=64), nullable=False),
        sa.Column("client", TEXT(length=40), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "client"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in site_rls(CONSENTS):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in no_site_rls(CONSENTS):
            op.execute(statement)
    op.drop_table(CONSENTS)
    op.drop_column("analytics_scores", "in_aggregates")
    op.drop_column("analytics_closed_episodes", "goal_attained")
