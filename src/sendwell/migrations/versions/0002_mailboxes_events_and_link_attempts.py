"""mailboxes, events and link attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:46:40.643977
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "link_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("typed_email", sa.String(length=320), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=False),
        sa.Column("pending_grant", sa.Text(), nullable=True),
        sa.Column("created_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_link_attempts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_attempts")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_link_attempts_state_hash")),
    )
    with op.batch_alter_table("link_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_attempts_user_id"), ["user_id"], unique=False)

    op.create_table(
        "mailboxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "connected",
                "reauth_required",
                "disconnected",
                name="mailboxstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("status_code", sa.String(length=100), nullable=False),
        sa.Column(
            "status_changed_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column(
            "token_expires_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("transient_failures", sa.Integer(), nullable=False),
        sa.Column(
            "first_transient_failure_at",
            sendwell.models.base.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column(
            "last_checked_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("min_gap_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_mailboxes_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_mailboxes_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailboxes")),
        sa.UniqueConstraint("provider", "subject", name=op.f("uq_mailboxes_provider_subject")),
    )
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mailboxes_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_mailboxes_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "mailbox_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "connected",
                "reauthenticated",
                "refreshed",
                "failed",
                "reauth_required",
                "disconnected",
                "settings_changed",
                name="mailboxeventkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("provider_code", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_mailbox_events_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_mailbox_events_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox_events")),
    )
    with op.batch_alter_table("mailbox_events", schema=None) as batch_op:
        batch_op.create_index("ix_mailbox_events_mailbox_id_at", ["mailbox_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mailbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_mailbox_events_mailbox_id_at")

    op.drop_table("mailbox_events")
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailboxes_owner_id"))
        batch_op.drop_index(batch_op.f("ix_mailboxes_email"))

    op.drop_table("mailboxes")
    with op.batch_alter_table("link_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_attempts_user_id"))

    op.drop_table("link_attempts")
