"""feedback: one standing answer per episode, session, respondent and instrument; amendments;
the fingerprint of what an Idempotency-Key was used for

Revision ID: feedback_0005
Revises: feedback_0004
Create Date: 2026-11-27 09:00:00

Answers stored twice before this revision (the same respondent, instrument and session of an
episode) keep their rows; the earliest stands and each later one is marked ``replaced_by`` it,
so the unique index can hold. Analytics had counted both: ``rapport replay`` or a backfill
re-evaluates such an episode.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "feedback_0005"
down_revision: str | None = "feedback_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STANDING = "replaced_by IS NULL"

# Later duplicates of one answer point at the earliest (by recording time, then id).
MARK_LEGACY_DUPLICATES = """
UPDATE feedback_responses SET replaced_by = ranked.first_id
FROM (
    SELECT id,
           ROW_NUMBER() OVER w AS position,
           FIRST_VALUE(id) OVER w AS first_id
    FROM feedback_responses
    WINDOW w AS (
        PARTITION BY episode_id, session_number, respondent, instrument
        ORDER BY recorded_at, id
    )
) AS ranked
WHERE feedback_responses.id = ranked.id AND ranked.position > 1
"""


def upgrade() -> None:
    with op.batch_alter_table("feedback_responses") as batch:
        batch.add_column(
            sa.Column(
                "request_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
            )
        )
        batch.add_column(
            sa.Column("amends", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch.add_column(
            sa.Column("replaced_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch.add_column(
            sa.Column("amended_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )
    if op.get_bind().dialect.name == "postgresql":
        # The table is under forced row-level security: this is the service's own work.
        op.execute("SELECT set_config('rapport.sites', '*', true)")
    op.execute(MARK_LEGACY_DUPLICATES)
    op.create_index(
        "uq_feedback_one_answer",
        "feedback_responses",
        ["episode_id", "session_number", "respondent", "instrument"],
        unique=True,
        postgresql_where=sa.text(STANDING),
        sqlite_where=sa.text(STANDING),
    )


def downgrade() -> None:
    op.drop_index("uq_feedback_one_answer", table_name="feedback_responses")
    with op.batch_alter_table("feedback_responses") as batch:
        batch.drop_column("amended_by")
        batch.drop_column("replaced_by")
        batch.drop_column("amends")
        batch.drop_column("request_fingerprint")
