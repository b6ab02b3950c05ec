"""notify: what each client consented to, per scope (from ``consent.changed``): a withdrawal
stops the invitations of the client's episodes; under row-level security

Revision ID: notify_0009
Revises: notify_0008
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "notify_0009"
down_revision: str | None = "notify_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "notify_consents"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "client", "scope"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in site_rls(TABLE):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in no_site_rls(TABLE):
            op.execute(statement)
    op.drop_table(TABLE)
