"""intake: the episode's last contact and the pending drop-out checks (issue 16)

Revision ID: intake_0006
Revises: intake_0005
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "intake_0006"
down_revision: str | None = "intake_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "intake_episodes",
        sa.Column("last_contact_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    )
    # shared/clock.py's due_checks_table("intake"): one row per pending check.
    op.create_table(
        "intake_due_checks",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", "kind"),
    )
    op.create_index("ix_intake_due_checks_site_id", "intake_due_checks", ["site_id"])
    op.create_index("ix_intake_due_checks_due_at", "intake_due_checks", ["due_at"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in site_rls("intake_due_checks"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in no_site_rls("intake_due_checks"):
            op.execute(statement)
    op.drop_index("ix_intake_due_checks_due_at", table_name="intake_due_checks")
    op.drop_index("ix_intake_due_checks_site_id", table_name="intake_due_checks")
    op.drop_table("intake_due_checks")
    op.drop_column("intake_episodes", "last_contact_at")
