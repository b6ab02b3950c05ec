"""feedback: what each client agreed to (consents, append-only), the sites' confidentiality
notices (versions) and the notice version a response through a link was given under; under
row-level security like every site-scoped table

Revision ID: feedback_0012
Revises: feedback_0011
Create Date: 2026-12-04 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "feedback_0012"
down_revision: str | None = "feedback_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "feedback_consents",
        sa.Column("id", TEXT(length=64), nullable=False),
        sa.Column("site_id", TEXT(length=64), nullable=False),
        sa.Column("client", TEXT(length=40), nullable=False),
        sa.Column("episode_id", TEXT(length=64), nullable=False),
        sa.Column("scope", TEXT(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("recorded_by", TEXT(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_feedback_consents_site_id", "feedback_consents", ["site_id"])
    op.create_index("ix_feedback_consents_client", "feedback_consents", ["client"])
    op.create_table(
        "feedback_notices",
        sa.Column("site_id", TEXT(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", TEXT(length=4000), nullable=False),
        sa.Column("risk_contacts", sa.JSON(), nullable=True),
        sa.Column("risk_within_minutes", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_by", TEXT(length=128), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "version"),
    )
    op.add_column("feedback_responses", sa.Column("notice_version", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for table in ("feedback_consents", "feedback_notices"):
            for statement in site_rls(table):
                op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("feedback_notices", "feedback_consents"):
            for statement in no_site_rls(table):
                op.execute(statement)
    op.drop_column("feedback_responses", "notice_version")
    op.drop_table("feedback_notices")
    op.drop_index("ix_feedback_consents_client", table_name="feedback_consents")
    op.drop_index("ix_feedback_consents_site_id", table_name="feedback_consents")
    op.drop_table("feedback_consents")
