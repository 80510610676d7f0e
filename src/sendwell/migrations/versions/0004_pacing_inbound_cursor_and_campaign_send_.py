"""pacing, inbound cursor and campaign send settings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:06:47.385784
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unsubscribe_footer", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "send_not_before", sendwell.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("inbound_cursor", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "inbound_checked_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("inbound_checked_at")
        batch_op.drop_column("inbound_cursor")
        batch_op.drop_column("send_not_before")

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("consecutive_failures")
        batch_op.drop_column("unsubscribe_footer")
