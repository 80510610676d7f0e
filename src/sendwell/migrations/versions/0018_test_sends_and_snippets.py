"""test emails sent to oneself, and saved snippets

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "test_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("step_position", sa.Integer(), nullable=False),
        sa.Column("to_email", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=1000), nullable=False),
        sa.Column("sent_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        _fk("test_sends", "workspace_id", "workspaces", "CASCADE"),
        _fk("test_sends", "user_id", "users", "CASCADE"),
        _fk("test_sends", "campaign_id", "campaigns", "CASCADE"),
        _fk("test_sends", "mailbox_id", "mailboxes", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_sends")),
    )
    with op.batch_alter_table("test_sends", schema=None) as batch_op:
        batch_op.create_index("ix_test_sends_user_id_sent_at", ["user_id", "sent_at"], unique=False)
    op.create_table(
        "snippets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=False),
        _fk("snippets", "workspace_id", "workspaces", "CASCADE"),
        _fk("snippets", "created_by_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snippets")),
    )
    with op.batch_alter_table("snippets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_snippets_workspace_id"), ["workspace_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("snippets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snippets_workspace_id"))
    op.drop_table("snippets")
    with op.batch_alter_table("test_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_test_sends_user_id_sent_at")
    op.drop_table("test_sends")
