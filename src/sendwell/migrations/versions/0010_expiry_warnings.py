"""expiry warnings and server certificate expiry

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "expiry_warnings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("expires_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_expiry_warnings_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_expiry_warnings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expiry_warnings")),
        sa.UniqueConstraint(
            "workspace_id",
            "scope",
            "reason",
            "expires_at",
            name=op.f("uq_expiry_warnings_workspace_id_scope_reason_expires_at"),
        ),
    )
    op.create_index(
        op.f("ix_expiry_warnings_mailbox_id"), "expiry_warnings", ["mailbox_id"], unique=False
    )
    # The earlier notAfter of an IMAP/SMTP account's two server certificates.
    with op.batch_alter_table("mail_servers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "certificate_expires_at",
                sendwell.models.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "certificate_checked_at",
                sendwell.models.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("mail_servers", schema=None) as batch_op:
        batch_op.drop_column("certificate_checked_at")
        batch_op.drop_column("certificate_expires_at")
    op.drop_index(op.f("ix_expiry_warnings_mailbox_id"), table_name="expiry_warnings")
    op.drop_table("expiry_warnings")
