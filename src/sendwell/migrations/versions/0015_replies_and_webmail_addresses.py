"""replies to campaigns' emails, and IMAP accounts' webmail address

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("step_position", sa.Integer(), nullable=False),
        sa.Column("received_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("from_address", sa.String(length=998), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("snippet", sa.String(length=300), nullable=False),
        sa.Column("provider_message_id", sa.String(length=255), nullable=False),
        sa.Column("thread_id", sa.String(length=998), nullable=False),
        sa.Column("web_link", sa.Text(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("reply", "auto_reply", name="replykind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "interest",
            sa.Enum(
                "none",
                "interested",
                "not_interested",
                name="interest",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("marked_by_id", sa.Integer(), nullable=True),
        sa.Column("marked_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_replies_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_replies_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_replies_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["marked_by_id"],
            ["users.id"],
            name=op.f("fk_replies_marked_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
        sa.UniqueConstraint(
            "mailbox_id",
            "provider_message_id",
            "enrollment_id",
            name=op.f("uq_replies_mailbox_id_provider_message_id_enrollment_id"),
        ),
    )
    op.create_index("ix_replies_campaign_id_received_at", "replies", ["campaign_id", "received_at"])
    op.create_index(op.f("ix_replies_enrollment_id"), "replies", ["enrollment_id"])
    with op.batch_alter_table("mail_servers") as batch:
        batch.add_column(
            sa.Column("webmail_url", sa.String(length=2000), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("mail_servers") as batch:
        batch.drop_column("webmail_url")
    op.drop_index(op.f("ix_replies_enrollment_id"), table_name="replies")
    op.drop_index("ix_replies_campaign_id_received_at", table_name="replies")
    op.drop_table("replies")
