"""analytics: pending time-driven checks (no_contact, dropout_risk), under row-level security

Revision ID: analytics_0009
Revises: analytics_0008
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "analytics_0009"
down_revision: str | None = "analytics_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "analytics_due_checks"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", "kind"),
    )
    op.create_index(f"ix_{TABLE}_site_id", TABLE, ["site_id"], unique=False)
    op.create_index(f"ix_{TABLE}_due_at", TABLE, ["due_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for statement in site_rls(TABLE):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in no_site_rls(TABLE):
            op.execute(statement)
    op.drop_index(f"ix_{TABLE}_due_at", table_name=TABLE)
    op.drop_index(f"ix_{TABLE}_site_id", table_name=TABLE)
    op.drop_table(TABLE)
