"""partial index for the claim

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 12:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_DUE = "status IN ('not_started', 'in_progress') AND next_due_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_due")
        batch_op.create_index(
            "ix_enrollments_pending_due",
            ["campaign_id", "next_due_at", "id"],
            unique=False,
            sqlite_where=sa.text(PENDING_DUE),
            postgresql_where=sa.text(PENDING_DUE),
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_pending_due")
        batch_op.create_index("ix_enrollments_due", ["status", "next_due_at"], unique=False)
