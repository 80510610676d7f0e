"""recipients found by address across campaigns; only held recipients in the holds index

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HELD = sa.text("held_until IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_held_until")
        batch_op.create_index(
            "ix_enrollments_held_until",
            ["held_until"],
            unique=False,
            sqlite_where=HELD,
            postgresql_where=HELD,
        )
        batch_op.create_index("ix_enrollments_email", ["email"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_email")
        batch_op.drop_index("ix_enrollments_held_until")
        batch_op.create_index("ix_enrollments_held_until", ["held_until"], unique=False)
