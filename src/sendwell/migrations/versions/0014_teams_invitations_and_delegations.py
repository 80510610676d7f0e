"""team invitations, deactivated users and delegated mailboxes

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "role",
            sa.Enum("admin", "member", name="role", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("cancelled_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["invited_by_id"],
            ["users.id"],
            name=op.f("fk_invitations_invited_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_invitations_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_invitations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invitations_email"), ["email"], unique=False)

    op.create_table(
        "delegations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("delegate_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "approved",
                "withdrawn",
                "declined",
                name="delegationstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("requested_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("granted_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["delegate_id"],
            ["users.id"],
            name=op.f("fk_delegations_delegate_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name=op.f("fk_delegations_mailbox_id_mailboxes")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_delegations_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_delegations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegations")),
    )
    with op.batch_alter_table("delegations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delegations_delegate_id"), ["delegate_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_delegations_mailbox_id"), ["mailbox_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_delegations_owner_id"), ["owner_id"], unique=False)

    with op.batch_alter_table("link_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delegation_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_link_attempts_delegation_id_delegations"),
            "delegations",
            ["delegation_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "deactivated_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("deactivated_at")

    with op.batch_alter_table("link_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_link_attempts_delegation_id_delegations"), type_="foreignkey"
        )
        batch_op.drop_column("delegation_id")

    with op.batch_alter_table("delegations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delegations_owner_id"))
        batch_op.drop_index(batch_op.f("ix_delegations_mailbox_id"))
        batch_op.drop_index(batch_op.f("ix_delegations_delegate_id"))

    op.drop_table("delegations")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invitations_email"))

    op.drop_table("invitations")
