"""delivery guards: the bounce-rate pause, auto-reply holds, sending-domain health

Revision ID: 0012
Revises: 0010
Create Date: 2027-01-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bounce_pause_percent", sa.Float(), server_default="2", nullable=False)
        )
        batch_op.add_column(
            sa.Column("bounce_pause_min_sends", sa.Integer(), server_default="50", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "bounce_window_start",
                sendwell.models.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("auto_reply_hold_days", sa.Integer(), server_default="3", nullable=False)
        )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("held_until", sendwell.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("hold_reason", sa.Text(), server_default="", nullable=False))
        batch_op.create_index("ix_enrollments_held_until", ["held_until"], unique=False)
    op.create_table(
        "domain_checks",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("selectors", sa.String(length=500), server_default="", nullable=False),
        sa.Column("handled_by", sa.String(length=40), server_default="", nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("checked_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_domain_checks_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_domain_checks")),
    )
    op.create_index(
        "ix_send_ledger_campaign_id_sent_at",
        "send_ledger",
        ["campaign_id", "sent_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("domain_checks")
    op.drop_index("ix_send_ledger_campaign_id_sent_at", table_name="send_ledger")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_held_until")
        batch_op.drop_column("hold_reason")
        batch_op.drop_column("held_until")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("auto_reply_hold_days")
        batch_op.drop_column("bounce_window_start")
        batch_op.drop_column("bounce_pause_min_sends")
        batch_op.drop_column("bounce_pause_percent")
