"""a mailbox with nothing due is left out of the sending walk until something may be

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 18:30:00

`mailbox_due_marks` has one row per mailbox. `nothing_due_before` is written by a claim that
found nothing of the mailbox due (dispatch/engine.py, `_leave_out`). The triggers below clear
it whenever one of the mailbox's recipients may be due sooner: one is added with a due moment,
given a due moment or an earlier one, or made pending again while having one; or one of its
campaigns changes (status, window, time zone, mailbox). They fire whatever wrote the row (an
ORM flush, a bulk UPDATE, an import), so no write path can forget. Each also counts the change
in `changes`; a claim writes the mark only if the count it read before looking is still the
count, so a change made while it looked is never lost.

A recipient due two hours or more from now needs nothing: a mark is never more than an hour
ahead (`NOTHING_DUE_HORIZON`), and the hour between covers a transaction that long. So a send
whose next step is days away (the usual follow-up) writes nothing here.

On PostgreSQL a transaction counts once (`changed_in`, its id): a row updated many times in
one transaction leaves a chain of versions that each update walks, so an import of 100,000
recipients updating this row per recipient would grow quadratically.

SQLite drops a table's triggers with the table: a later migration that rebuilds `campaigns`,
`enrollments` or `mailboxes` (a batch operation that copies the table) drops these triggers
first and creates them again after (tests/test_migrations.py checks they are there).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sendwell.models.base

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Recipients due within two hours and pending (not_started, in_progress) count.

SQLITE = [
    """
    CREATE TRIGGER mailboxes_due_mark AFTER INSERT ON mailboxes
    BEGIN
        INSERT INTO mailbox_due_marks (mailbox_id, changes) VALUES (NEW.id, 0);
    END
    """,
    """
    CREATE TRIGGER enrollments_due_added AFTER INSERT ON enrollments
    WHEN NEW.next_due_at IS NOT NULL
        AND NEW.next_due_at < strftime('%Y-%m-%d %H:%M:%f', 'now', '+2 hours')
        AND NEW.status IN ('not_started', 'in_progress')
    BEGIN
        UPDATE mailbox_due_marks SET changes = changes + 1, nothing_due_before = NULL
        WHERE mailbox_id = (SELECT mailbox_id FROM campaigns WHERE id = NEW.campaign_id);
    END
    """,
    """
    CREATE TRIGGER enrollments_due_sooner AFTER UPDATE OF next_due_at, status ON enrollments
    WHEN NEW.next_due_at IS NOT NULL
        AND NEW.next_due_at < strftime('%Y-%m-%d %H:%M:%f', 'now', '+2 hours')
        AND NEW.status IN ('not_started', 'in_progress')
        AND (OLD.next_due_at IS NULL OR NEW.next_due_at < OLD.next_due_at
             OR NEW.status IS NOT OLD.status)
    BEGIN
        UPDATE mailbox_due_marks SET changes = changes + 1, nothing_due_before = NULL
        WHERE mailbox_id = (SELECT mailbox_id FROM campaigns WHERE id = NEW.campaign_id);
    END
    """,
    """
    CREATE TRIGGER campaigns_changed AFTER UPDATE ON campaigns
    BEGIN
        UPDATE mailbox_due_marks SET changes = changes + 1, nothing_due_before = NULL
        WHERE mailbox_id IN (OLD.mailbox_id, NEW.mailbox_id);
    END
    """,
]

POSTGRESQL = [
    """
    CREATE FUNCTION sendwell_new_due_mark() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO mailbox_due_marks (mailbox_id, changes) VALUES (NEW.id, 0);
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER mailboxes_due_mark AFTER INSERT ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION sendwell_new_due_mark()
    """,
    # A change for these mailboxes: counted once per transaction.
    """
    CREATE FUNCTION sendwell_due_changed(mailbox_ids integer[]) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE mailbox_due_marks
        SET changes = changes + 1, nothing_due_before = NULL, changed_in = txid_current()
        WHERE mailbox_id = ANY (mailbox_ids) AND changed_in IS DISTINCT FROM txid_current();
    END
    $$
    """,
    """
    CREATE FUNCTION sendwell_recipient_due_sooner() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM sendwell_due_changed(
            ARRAY(SELECT mailbox_id FROM campaigns WHERE id = NEW.campaign_id)
        );
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER enrollments_due_added AFTER INSERT ON enrollments
    FOR EACH ROW WHEN (NEW.next_due_at IS NOT NULL
        AND NEW.next_due_at < now() + interval '2 hours' AND NEW.status IN ('not_started', 'in_progress'))
    EXECUTE FUNCTION sendwell_recipient_due_sooner()
    """,
    """
    CREATE TRIGGER enrollments_due_sooner AFTER UPDATE OF next_due_at, status ON enrollments
    FOR EACH ROW WHEN (NEW.next_due_at IS NOT NULL
        AND NEW.next_due_at < now() + interval '2 hours' AND NEW.status IN ('not_started', 'in_progress')
        AND (OLD.next_due_at IS NULL OR NEW.next_due_at < OLD.next_due_at
             OR NEW.status IS DISTINCT FROM OLD.status))
    EXECUTE FUNCTION sendwell_recipient_due_sooner()
    """,
    """
    CREATE FUNCTION sendwell_campaign_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM sendwell_due_changed(ARRAY[OLD.mailbox_id, NEW.mailbox_id]);
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
    "DROP TRIGGER campaigns_changed",
    "DROP TRIGGER enrollments_due_sooner",
    "DROP TRIGGER enrollments_due_added",
    "DROP TRIGGER mailboxes_due_mark",
]

DROP_POSTGRESQL = [
    "DROP TRIGGER campaigns_changed ON campaigns",
    "DROP TRIGGER enrollments_due_sooner ON enrollments",
    "DROP TRIGGER enrollments_due_added ON enrollments",
    "DROP TRIGGER mailboxes_due_mark ON mailboxes",
    "DROP FUNCTION sendwell_campaign_changed()",
    "DROP FUNCTION sendwell_recipient_due_sooner()",
    "DROP FUNCTION sendwell_due_changed(integer[])",
    "DROP FUNCTION sendwell_new_due_mark()",
]


def upgrade() -> None:
    op.create_table(
        "mailbox_due_marks",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column(
            "nothing_due_before",
            sendwell.models.base.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("changes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("changed_in", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_mailbox_due_marks_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_mailbox_due_marks")),
    )
    op.execute("INSERT INTO mailbox_due_marks (mailbox_id, changes) SELECT id, 0 FROM mailboxes")
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in DROP_POSTGRESQL if postgresql else DROP_SQLITE:
        op.execute(statement)
    op.drop_table("mailbox_due_marks")
