"""analytics: erasure record and register; row-level security on site-scoped tables

Revision ID: analytics_0004
Revises: analytics_0003
Create Date: 2026-11-26 08:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "analytics_0004"
down_revision: str | None = "analytics_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table with a site_id column (tests/system/test_rls.py checks none is missed).
SITE_SCOPED = (
    "analytics_alerts",
    "analytics_audit",
    "analytics_closed_episodes",
    "analytics_episodes",
    "analytics_erasures",
    "analytics_scores",
)


def upgrade() -> None:
    op.create_table(
        "analytics_erasures",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=40), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("removed", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index(
        "ix_analytics_erasures_site_id", "analytics_erasures", ["site_id"], unique=False
    )
    op.create_table(
        "analytics_erased",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in SITE_SCOPED:
            for statement in site_rls(table):
                op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in SITE_SCOPED:
            for statement in no_site_rls(table):
                op.execute(statement)
    op.drop_table("analytics_erased")
    op.drop_index("ix_analytics_erasures_site_id", table_name="analytics_erasures")
    op.drop_table("analytics_erasures")
