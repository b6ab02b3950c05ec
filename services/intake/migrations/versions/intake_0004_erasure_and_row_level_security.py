"""intake: erasure record and register, client data keys; row-level security on site-scoped tables

Revision ID: intake_0004
Revises: intake_0003
Create Date: 2026-11-26 08:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "intake_0004"
down_revision: str | None = "intake_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table with a site_id column (tests/system/test_rls.py checks none is missed).
SITE_SCOPED = (
    "intake_audit",
    "intake_effectiveness",
    "intake_episodes",
    "intake_erasures",
    "intake_intakes",
    "intake_matches",
)


def upgrade() -> None:
    op.create_table(
        "intake_erasures",
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
    op.create_index("ix_intake_erasures_site_id", "intake_erasures", ["site_id"], unique=False)
    op.create_table(
        "intake_erased",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject"),
    )
    # Each client's data key, wrapped by the service key (crypto-shredding on erasure).
    op.create_table(
        "intake_client_keys",
        sa.Column("client", sa.String(length=40), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client"),
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
    op.drop_table("intake_client_keys")
    op.drop_table("intake_erased")
    op.drop_index("ix_intake_erasures_site_id", table_name="intake_erasures")
    op.drop_table("intake_erasures")
