"""sent subject on the ledger

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The subject a step was sent with: a reply repeats its thread's, and a host whose Sent
    # copies carry no custom headers (Microsoft Graph) is searched by recipient and subject.
    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.drop_column("subject")
