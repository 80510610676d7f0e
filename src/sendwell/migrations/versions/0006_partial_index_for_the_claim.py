"""partial index for the claim, counting indexes, and the mailbox sender lease

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 12:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sendwell.models.base import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "status IN ('not_started', 'in_progress')"


def upgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_due")
        batch_op.create_index(
            "ix_enrollments_pending",
            ["campaign_id", "next_due_at", "id"],
            unique=False,
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )
        batch_op.create_index(
            "ix_enrollments_campaign_id_status", ["campaign_id", "status"], unique=False
        )
    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.create_index(
            "ix_send_ledger_campaign_id_status", ["campaign_id", "status"], unique=False
        )
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sender", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("sender_until", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("sender_until")
        batch_op.drop_column("sender")
    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_send_ledger_campaign_id_status")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_campaign_id_status")
        batch_op.drop_index("ix_enrollments_pending")
        batch_op.create_index("ix_enrollments_due", ["status", "next_due_at"], unique=False)
