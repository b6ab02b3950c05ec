"""analytics: a note on a recorded action, sealed under the client's own data key (the episode's
client learnt from match.confirmed; the keys wrapped by analytics' service key and destroyed on
erasure)

Revision ID: analytics_0011
Revises: analytics_0010
Create Date: 2026-12-04 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "analytics_0011"
down_revision: str | None = "analytics_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("analytics_episodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("client", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
    with op.batch_alter_table("analytics_alert_actions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note_sealed", sa.Text(), nullable=True))
    # Each client's data key, wrapped by the service key (crypto-shredding on erasure).
    op.create_table(
        "analytics_client_keys",
        sa.Column("client", sa.String(length=40), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client"),
    )


def downgrade() -> None:
    op.drop_table("analytics_client_keys")
    with op.batch_alter_table("analytics_alert_actions", schema=None) as batch_op:
        batch_op.drop_column("note_sealed")
    with op.batch_alter_table("analytics_episodes", schema=None) as batch_op:
        batch_op.drop_column("client")
