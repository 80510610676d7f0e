"""Bulk-loaded campaigns for the scale benchmarks, written with SQL so that setup is fast.

One mailbox, `campaigns` active two-step campaigns, `enrollments` recipients spread evenly:
the first `due` are due now (never sent); of the rest, half finished and half waiting three
days for step 2, each with its step-1 row in the send ledger from 2 to 30 days ago.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, select, text

from sendwell.db import make_session_factory, session_scope
from sendwell.kit.clock import utcnow
from sendwell.models import Mailbox, MailboxStatus, User
from sendwell.providers.base import ProviderName

SQLITE_MOMENT = "%Y-%m-%d %H:%M:%S.%f"

# Per dialect: numbers 1..n, and a moment :now shifted by an expression in seconds.
SERIES = {
    "postgresql": "SELECT g FROM generate_series(1, :n) AS g",
    "sqlite": "WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < :n) "
    "SELECT g FROM seq",
}


def shifted(dialect: str, seconds: str) -> str:
    if dialect == "postgresql":
        return f"(CAST(:now AS timestamptz) + ({seconds}) * interval '1 second')"
    return f"(strftime('%Y-%m-%d %H:%M:%f', :now, ({seconds}) || ' seconds') || '000')"


def clear(connection: Connection) -> None:
    """Remove every campaign and what hangs off it."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("TRUNCATE campaigns RESTART IDENTITY CASCADE"))
        return
    for table in ("send_ledger", "enrollments", "campaign_steps", "campaign_events", "campaigns"):
        connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names


def load(
    engine: Engine,
    *,
    owner_id: int,
    mailbox_id: int,
    campaigns: int,
    enrollments: int,
    due: int,
) -> None:
    dialect = engine.dialect.name
    now = utcnow()
    moment: datetime | str = now if dialect == "postgresql" else sqlite_moment(now)
    false = "false" if dialect == "postgresql" else "0"
    ago = shifted(dialect, "-g")
    future = shifted(dialect, "3 * 86400")
    history = shifted(dialect, "-172800 - (e.id * 127 % 2419200)")
    params = {"now": moment, "owner": owner_id, "mailbox": mailbox_id}
    statements = [
        (
            campaigns,
            f"""INSERT INTO campaigns (workspace_id, owner_id, mailbox_id, name, status,
            schedule_days, timezone, start_delay_minutes, unsubscribe_footer,
            consecutive_failures, created_at, started_at, status_changed_at)
        SELECT 1, :owner, :mailbox, 'Scale ' || g, 'active', '', 'UTC', 0, {false}, 0,
            :now, :now, :now FROM ({SERIES[dialect]}) AS numbers""",  # noqa: S608 - fixed fragments
        ),
        (
            0,
            f"""INSERT INTO campaign_steps (campaign_id, position, subject, body, body_html,
            delay_minutes, new_thread)
        SELECT id, position, 'Hello {{{{ first_name }}}}', 'Hi {{{{ first_name }}}}.', '',
            (position - 1) * 4320, {false}
        FROM campaigns, (SELECT 1 AS position UNION ALL SELECT 2) AS steps""",  # noqa: S608
        ),
        (
            enrollments,
            f"""WITH numbered AS (
            SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM campaigns
        ), numbers AS ({SERIES[dialect]})
        INSERT INTO enrollments (campaign_id, email, first_name, last_name, company, title,
            fields, status, steps_sent, next_due_at, last_sent_at, thread_id, last_message_id,
            status_reason, created_at)
        SELECT numbered.id, 'r' || g || '@example.com', 'R' || g, '', '', '', '{{}}',
            CASE WHEN g <= :due THEN 'not_started'
                 WHEN g % 2 = 0 THEN 'completed' ELSE 'in_progress' END,
            CASE WHEN g <= :due THEN 0 ELSE 1 END,
            CASE WHEN g <= :due THEN {ago} WHEN g % 2 = 0 THEN NULL ELSE {future} END,
            NULL, CASE WHEN g <= :due THEN '' ELSE 't' || g END,
            CASE WHEN g <= :due THEN '' ELSE '<h' || g || '@bench.example>' END, '', :now
        FROM numbers JOIN numbered ON numbered.k = g % :campaigns""",  # noqa: S608
        ),
        (
            0,
            f"""INSERT INTO send_ledger (enrollment_id, campaign_id, mailbox_id, step_position,
            status, tag, worker, attempts, provider_message_id, thread_id, message_id_header,
            error, claimed_at, sent_at)
        SELECT e.id, e.campaign_id, :mailbox, 1, 'sent', 'h' || e.id, 'bench', 1,
            'p' || e.id, e.thread_id, e.last_message_id, '', {history}, {history}
        FROM enrollments AS e WHERE e.steps_sent = 1""",  # noqa: S608
        ),
    ]
    with engine.begin() as connection:
        clear(connection)
        for n, statement in statements:
            connection.execute(
                text(statement), {**params, "n": n, "due": due, "campaigns": campaigns}
            )
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def sqlite_moment(moment: datetime) -> str:
    return moment.replace(tzinfo=None).strftime(SQLITE_MOMENT)


def mailbox_row(engine: Engine, address: str) -> tuple[int, int]:
    """A connected mailbox row without tokens, for benchmarks that never send; returns
    (owner id, mailbox id). The workspace's first user must exist."""
    with session_scope(make_session_factory(engine)) as db:
        owner = db.scalars(select(User).order_by(User.id)).first()
        if owner is None:
            raise ValueError("create the first user before the mailbox")
        mailbox = Mailbox(
            workspace_id=owner.workspace_id,
            owner_id=owner.id,
            provider=ProviderName.GOOGLE,
            subject=f"bench-{address}",
            email=address,
            status=MailboxStatus.CONNECTED,
            daily_cap=10_000,
            min_gap_seconds=0,
        )
        db.add(mailbox)
        db.flush()
        return owner.id, mailbox.id
