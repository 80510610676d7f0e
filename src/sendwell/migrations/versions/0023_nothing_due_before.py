"""a mailbox with nothing due is left out of the sending walk until something may be

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 18:30:00

`mailboxes.nothing_due_before` is written by a claim that found nothing of the mailbox due
(dispatch/engine.py). The triggers below clear it whenever one of the mailbox's recipients
may be due sooner: one is added with a due moment, given an earlier one, or made pending
again, or the campaign itself changes (status, window, time zone, mailbox). They fire
whatever wrote the row (an ORM flush, a bulk UPDATE, an import), so no write path can
forget. They also count each such change in `campaigns.due_changes`: a claim writes
`nothing_due_before` only if the counts it read before looking are still the counts, so a
change made while it looked is never lost.

SQLite drops a table's triggers with the table: a later migration that rebuilds `campaigns`
or `enrollments` (a batch operation that copies the table) creates these triggers again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A recipient is added with a due moment, given one, given an earlier one, or changes status
# while having one (made pending again): its campaign's count goes up, and its mailbox, if
# left out of the walk, is brought back.
SQLITE = [
    """
    CREATE TRIGGER enrollments_due_added AFTER INSERT ON enrollments
    WHEN NEW.next_due_at IS NOT NULL
    BEGIN
        UPDATE campaigns SET due_changes = due_changes + 1 WHERE id = NEW.campaign_id;
        UPDATE mailboxes SET nothing_due_before = NULL
        WHERE nothing_due_before IS NOT NULL
          AND id = (SELECT mailbox_id FROM campaigns WHERE id = NEW.campaign_id);
    END
    """,
    """
    CREATE TRIGGER enrollments_due_sooner AFTER UPDATE OF next_due_at, status ON enrollments
    WHEN NEW.next_due_at IS NOT NULL AND (OLD.next_due_at IS NULL
        OR NEW.next_due_at < OLD.next_due_at OR NEW.status IS NOT OLD.status)
    BEGIN
        UPDATE campaigns SET due_changes = due_changes + 1 WHERE id = NEW.campaign_id;
        UPDATE mailboxes SET nothing_due_before = NULL
        WHERE nothing_due_before IS NOT NULL
          AND id = (SELECT mailbox_id FROM campaigns WHERE id = NEW.campaign_id);
    END
    """,
    # Any other change to the campaign (its status, window, time zone, mailbox) counts too.
    """
    CREATE TRIGGER campaigns_changed AFTER UPDATE ON campaigns
    WHEN NEW.due_changes = OLD.due_changes
    BEGIN
        UPDATE campaigns SET due_changes = due_changes + 1 WHERE id = NEW.id;
        UPDATE mailboxes SET nothing_due_before = NULL
        WHERE nothing_due_before IS NOT NULL AND id IN (OLD.mailbox_id, NEW.mailbox_id);
    END
    """,
]

POSTGRESQL = [
    """
    CREATE FUNCTION sendwell_recipient_due_sooner() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE campaigns SET due_changes = due_changes + 1 WHERE id = NEW.campaign_id;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER enrollments_due_added AFTER INSERT ON enrollments
    FOR EACH ROW WHEN (NEW.next_due_at IS NOT NULL)
    EXECUTE FUNCTION sendwell_recipient_due_sooner()
    """,
    """
    CREATE TRIGGER enrollments_due_sooner AFTER UPDATE OF next_due_at, status ON enrollments
    FOR EACH ROW WHEN (NEW.next_due_at IS NOT NULL AND (OLD.next_due_at IS NULL
        OR NEW.next_due_at < OLD.next_due_at OR NEW.status IS DISTINCT FROM OLD.status))
    EXECUTE FUNCTION sendwell_recipient_due_sooner()
    """,
    # Every change to a campaign is counted (a recipient's, above, is counted here)...
    """
    CREATE FUNCTION sendwell_campaign_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.due_changes := OLD.due_changes + 1;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER campaigns_counted BEFORE UPDATE ON campaigns
    FOR EACH ROW WHEN (NEW.due_changes = OLD.due_changes)
    EXECUTE FUNCTION sendwell_campaign_counted()
    """,
    # ...and sends its mailbox back into the walk. A claim that read the count before it
    # changed holds the campaign's row until it commits, so this runs after its write.
    """
    CREATE FUNCTION sendwell_campaign_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE mailboxes SET nothing_due_before = NULL
        WHERE id IN (OLD.mailbox_id, NEW.mailbox_id) AND nothing_due_before IS NOT NULL;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER campaigns_changed AFTER UPDATE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION sendwell_campaign_changed()
    """,
]

DROP_SQLITE = [
    "DROP TRIGGER enrollments_due_added",
    "DROP TRIGGER enrollments_due_sooner",
    "DROP TRIGGER campaigns_changed",
]

DROP_POSTGRESQL = [
    "DROP TRIGGER enrollments_due_added ON enrollments",
    "DROP TRIGGER enrollments_due_sooner ON enrollments",
    "DROP TRIGGER campaigns_counted ON campaigns",
    "DROP TRIGGER campaigns_changed ON campaigns",
    "DROP FUNCTION sendwell_recipient_due_sooner()",
    "DROP FUNCTION sendwell_campaign_counted()",
    "DROP FUNCTION sendwell_campaign_changed()",
]


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "nothing_due_before",
                sendwell.models.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("due_changes", sa.Integer(), nullable=False, server_default="0")
        )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in DROP_POSTGRESQL if postgresql else DROP_SQLITE:
        op.execute(statement)
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("due_changes")
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("nothing_due_before")
