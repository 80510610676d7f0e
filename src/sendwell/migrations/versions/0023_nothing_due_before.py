"""a mailbox with nothing due is left out of the sending walk until something may be

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 18:30:00

`mailbox_due_marks` has one row per mailbox (made with it by a trigger). `nothing_due_before`
is written by a claim that found nothing of the mailbox due (dispatch/engine.py, `_leave_out`).
The triggers below clear a mark still ahead whenever one of the mailbox's recipients may be due
sooner: one is added with a due moment, given a due moment or an earlier one, or made pending
again while having one; or one of its campaigns changes what decides when its recipients may be
sent (status, window, time zone, mailbox; not a counter). They fire whatever wrote the row (an
ORM flush, a bulk UPDATE, an import), so no write path can forget.

A change made while a claim works out a mark is never lost. On PostgreSQL each change takes the
mailbox's advisory lock (21336, mailbox id) shared, until its transaction ends; a claim takes
it exclusively without waiting, or writes no mark, and works the mark out only once it holds
it, from what was committed by then: a change committed before is seen, one still running makes
the claim write nothing, and one that comes after waits for the claim's commit and clears the
mark. Changes never wait for each other: their advisory locks are shared, and one clears a mark
only if no other change holds its row (another change is clearing it), and writes nothing when
no mark is ahead. A change that clears a mark and then rolls back leaves it cleared; one that
skipped it because another was clearing it, which then rolled back, leaves it at most an hour.
On SQLite one writer at a time does the same: the claim holds the write lock.

A recipient due two hours or more from now needs nothing: a mark is never more than an hour
ahead (`NOTHING_DUE_HORIZON`), and the hour between covers a transaction that long. So a send
whose next step is days away (the usual follow-up) does nothing here. On PostgreSQL the
recipients an INSERT adds are looked at once per statement (an import adds thousands at once).

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
        INSERT INTO mailbox_due_marks (mailbox_id) VALUES (NEW.id);
    END
    """,
    """
    CREATE TRIGGER enrollments_due_added AFTER INSERT ON enrollments
    WHEN NEW.next_due_at IS NOT NULL
        AND NEW.next_due_at < strftime('%Y-%m-%d %H:%M:%f', 'now', '+2 hours')
        AND NEW.status IN ('not_started', 'in_progress')
    BEGIN
        UPDATE mailbox_due_marks SET nothing_due_before = NULL
        WHERE mailbox_id = (SELECT mailbox_id FROM campaigns WHERE id = NEW.campaign_id)
          AND nothing_due_before > strftime('%Y-%m-%d %H:%M:%f', 'now');
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
        UPDATE mailbox_due_marks SET nothing_due_before = NULL
        WHERE mailbox_id = (SELECT mailbox_id FROM campaigns WHERE id = NEW.campaign_id)
          AND nothing_due_before > strftime('%Y-%m-%d %H:%M:%f', 'now');
    END
    """,
    """
    CREATE TRIGGER campaigns_changed AFTER UPDATE OF
        status, mailbox_id, schedule_days, schedule_start, schedule_end, timezone,
        recipient_time_zones
    ON campaigns
    WHEN NEW.status IS NOT OLD.status OR NEW.mailbox_id IS NOT OLD.mailbox_id
        OR NEW.schedule_days IS NOT OLD.schedule_days
        OR NEW.schedule_start IS NOT OLD.schedule_start
        OR NEW.schedule_end IS NOT OLD.schedule_end OR NEW.timezone IS NOT OLD.timezone
        OR NEW.recipient_time_zones IS NOT OLD.recipient_time_zones
    BEGIN
        UPDATE mailbox_due_marks SET nothing_due_before = NULL
        WHERE mailbox_id IN (OLD.mailbox_id, NEW.mailbox_id)
          AND nothing_due_before > strftime('%Y-%m-%d %H:%M:%f', 'now');
    END
    """,
]

POSTGRESQL = [
    """
    CREATE FUNCTION sendwell_new_due_mark() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO mailbox_due_marks (mailbox_id) VALUES (NEW.id);
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER mailboxes_due_mark AFTER INSERT ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION sendwell_new_due_mark()
    """,
    # A change for these mailboxes: no claim may work out a mark until it commits, and any
    # mark still ahead goes.
    """
    CREATE FUNCTION sendwell_due_changed(mailbox_ids integer[]) RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE
        mailbox integer;
    BEGIN
        FOREACH mailbox IN ARRAY mailbox_ids LOOP
            PERFORM pg_advisory_xact_lock_shared(21336, mailbox);
        END LOOP;
        UPDATE mailbox_due_marks SET nothing_due_before = NULL
        WHERE mailbox_id IN (
            SELECT mailbox_id FROM mailbox_due_marks
            WHERE mailbox_id = ANY (mailbox_ids) AND nothing_due_before > statement_timestamp()
            FOR UPDATE SKIP LOCKED
        );
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
    CREATE FUNCTION sendwell_recipients_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM sendwell_due_changed(ARRAY(
            SELECT DISTINCT c.mailbox_id FROM added a JOIN campaigns c ON c.id = a.campaign_id
            WHERE a.next_due_at IS NOT NULL
              AND a.next_due_at < statement_timestamp() + interval '2 hours'
              AND a.status IN ('not_started', 'in_progress')
            ORDER BY c.mailbox_id
        ));
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER enrollments_due_added AFTER INSERT ON enrollments
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION sendwell_recipients_added()
    """,
    """
    CREATE TRIGGER enrollments_due_sooner AFTER UPDATE OF next_due_at, status ON enrollments
    FOR EACH ROW WHEN (NEW.next_due_at IS NOT NULL
        AND NEW.next_due_at < statement_timestamp() + interval '2 hours'
        AND NEW.status IN ('not_started', 'in_progress')
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
    CREATE TRIGGER campaigns_changed AFTER UPDATE OF
        status, mailbox_id, schedule_days, schedule_start, schedule_end, timezone,
        recipient_time_zones
    ON campaigns
    FOR EACH ROW WHEN (
        (NEW.status, NEW.mailbox_id, NEW.schedule_days, NEW.schedule_start, NEW.schedule_end,
         NEW.timezone, NEW.recipient_time_zones)
        IS DISTINCT FROM
        (OLD.status, OLD.mailbox_id, OLD.schedule_days, OLD.schedule_start, OLD.schedule_end,
         OLD.timezone, OLD.recipient_time_zones)
    )
    EXECUTE FUNCTION sendwell_campaign_changed()
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
    "DROP FUNCTION sendwell_recipients_added()",
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
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_mailbox_due_marks_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_mailbox_due_marks")),
    )
    op.create_index(
        op.f("ix_mailbox_due_marks_nothing_due_before"),
        "mailbox_due_marks",
        ["nothing_due_before"],
        unique=False,
    )
    op.execute("INSERT INTO mailbox_due_marks (mailbox_id) SELECT id FROM mailboxes")
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in DROP_POSTGRESQL if postgresql else DROP_SQLITE:
        op.execute(statement)
    op.drop_index(op.f("ix_mailbox_due_marks_nothing_due_before"), table_name="mailbox_due_marks")
    op.drop_table("mailbox_due_marks")
