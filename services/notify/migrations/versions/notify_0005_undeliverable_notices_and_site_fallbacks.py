"""notify: undeliverable notices wait for a route; a site's fallback address (sealed)

Revision ID: notify_0005
Revises: notify_0004
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.migrations import no_site_rls, site_rls

revision: str = "notify_0005"
down_revision: str | None = "notify_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notify_notices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "undeliverable_reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("awaiting_route_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("routed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("fallback_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("fallback_to", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_notify_notices_awaiting_route_since"),
            ["awaiting_route_since"],
            unique=False,
        )
    op.create_table(
        "notify_site_fallbacks",
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("email_sealed", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.PrimaryKeyConstraint("site_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in site_rls("notify_site_fallbacks"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in no_site_rls("notify_site_fallbacks"):
            op.execute(statement)
    op.drop_table("notify_site_fallbacks")
    with op.batch_alter_table("notify_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_notices_awaiting_route_since"))
        batch_op.drop_column("fallback_to")
        batch_op.drop_column("fallback_at")
        batch_op.drop_column("routed_at")
        batch_op.drop_column("awaiting_route_since")
        batch_op.drop_column("undeliverable_reason")
