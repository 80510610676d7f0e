"""index for the rolling daily cap

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 11:33:42.603844
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.create_index(
            "ix_send_ledger_mailbox_id_claimed_at", ["mailbox_id", "claimed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_send_ledger_mailbox_id_claimed_at")
