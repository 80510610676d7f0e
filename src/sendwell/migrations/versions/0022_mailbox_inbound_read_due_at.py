"""each mailbox's next inbox read, so quiet inboxes are read less often

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # None: due at once, so every inbox is read at the first pass after the upgrade, then
    # on its own schedule.
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "inbound_read_due_at",
                sendwell.models.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.create_index(
            "ix_mailboxes_inbound_read_due_at", ["inbound_read_due_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_index("ix_mailboxes_inbound_read_due_at")
        batch_op.drop_column("inbound_read_due_at")
