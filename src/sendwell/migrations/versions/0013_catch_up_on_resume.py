"""catch-up choice on resume, and when a recipient's status changed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # What a Resume does with steps that fell due during the pause, per campaign.
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "catch_up",
                sa.Enum(
                    "catch_up",
                    "shift",
                    "skip",
                    name="catchup",
                    native_enum=False,
                    length=32,
                ),
                server_default="catch_up",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("catch_up_skip_days", sa.Integer(), server_default="7", nullable=False)
        )
    # When a recipient replied, bounced or unsubscribed: the Resume preview says what
    # arrived during the pause.
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "status_changed_at", sendwell.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_column("status_changed_at")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("catch_up_skip_days")
        batch_op.drop_column("catch_up")
