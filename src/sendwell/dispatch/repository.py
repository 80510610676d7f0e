"""Every query the sending engine runs; the dialect decides how claims are locked."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    ScalarSelect,
    Select,
    Table,
    and_,
    bindparam,
    case,
    column,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    table,
    union_all,
    update,
)
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.sql.dml import ReturningUpdate

from sendwell.db import write_lock_first
from sendwell.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    DispatchWorker,
    DueMark,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    MailboxStatus,
    SendLedger,
    Suppression,
    TestSend,
    lifecycle,
)
from sendwell.models.campaign import PENDING_STATUSES, enrollment_pending
from sendwell.models.lifecycle import EnrollmentEvent, LedgerEvent
from sendwell.providers.base import ProviderName

PENDING = PENDING_STATUSES
COUNTS_TOWARD_CAP = (LedgerStatus.CLAIMED, LedgerStatus.UNKNOWN, LedgerStatus.SENT)


# How long after a send its copy is looked for in Sent to learn its ids (Graph's sendMail
# answers before the copy exists, and says nothing of where it will be).
METADATA_LOOKUP = timedelta(days=1)


def is_postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


@dataclass(frozen=True)
class DueMailbox:
    """A mailbox the pass may send for, with what tells whether it keeps a gap."""

    id: int
    min_gap_seconds: int
    provider: ProviderName


def sending_mailboxes(db: Session, worker: str, now: datetime) -> list[DueMailbox]:
    """Connected mailboxes with an active campaign whose pacing allows a send now, that no
    other worker is sending for, and not known to have nothing due (`leave_out_until`),
    longest waiting first. Three columns only: with thousands of paced mailboxes a pass runs
    this many times a second, and each claim reads its row.

    The walk starts from the marks that have come (`_unmarked`), an index range: a fleet of
    quiet mailboxes costs a pass only those whose mark has come, not a look at every row."""
    has_active = exists().where(
        Campaign.mailbox_id == Mailbox.id, Campaign.status == CampaignStatus.ACTIVE
    )
    rows = db.execute(
        select(Mailbox.id, Mailbox.min_gap_seconds, Mailbox.provider)
        .select_from(DueMark)
        .join(Mailbox, Mailbox.id == DueMark.mailbox_id)
        .where(
            _unmarked(now),
            Mailbox.status == MailboxStatus.CONNECTED,
            has_active,
            or_(Mailbox.send_not_before.is_(None), Mailbox.send_not_before <= now),
            or_(
                Mailbox.sender_until.is_(None),
                Mailbox.sender_until <= now,
                Mailbox.sender == worker,
            ),
        )
        .order_by(Mailbox.send_not_before.nulls_first(), Mailbox.id)
    )
    return [DueMailbox(*row) for row in rows]


def _unmarked(now: datetime) -> ColumnElement[bool]:
    """A mailbox's mark that leaves it in the walk: no moment written, or one that has come.
    The walk starts from `mailbox_due_marks`, so a mailbox without a row there is never
    walked: migration 0023's trigger makes the row with the mailbox, and
    `tests/test_migrations.py` checks the trigger is there at the latest revision."""
    return or_(DueMark.nothing_due_before.is_(None), DueMark.nothing_due_before <= now)


def unmarked_without_campaign(db: Session, now: datetime, limit: int) -> list[int]:
    """Up to `limit` mailboxes the walk's index range still holds (`_unmarked`) though none
    of their campaigns is active: a mailbox never used, or whose campaigns all ended, is
    never claimed, so no claim leaves it out of the walk."""
    has_active = exists().where(
        Campaign.mailbox_id == DueMark.mailbox_id, Campaign.status == CampaignStatus.ACTIVE
    )
    return list(
        db.scalars(select(DueMark.mailbox_id).where(_unmarked(now), ~has_active).limit(limit))
    )


# The advisory lock of a mailbox's mark, (this, mailbox id), taken shared by the triggers of
# migration 0023 while a change that may bring a recipient due sooner is made.
DUE_MARK_LOCK = 21336


def hold_marks(db: Session, mailbox_ids: list[int]) -> list[int]:
    """Those of these mailboxes for which no change that may bring a recipient due sooner is
    being made now, held so until the commit: a mark worked out from here on sees every
    change made before, and any change made after waits for the commit and clears the mark.
    On PostgreSQL, each mailbox's advisory lock taken without waiting (a change in progress,
    an import perhaps, may take minutes); on SQLite, the write lock, which no change can hold
    meanwhile (every writer waits for the one before)."""
    if not is_postgres(db):
        write_lock_first(db)
        return list(mailbox_ids)
    held = func.pg_try_advisory_xact_lock(DUE_MARK_LOCK, column("id"))
    return list(
        db.scalars(
            select(column("id"))
            .select_from(func.unnest(literal(mailbox_ids, ARRAY(Integer))).alias("id"))
            .where(held)
        )
    )


def leave_out_until(db: Session, until: dict[int, datetime]) -> None:
    """Leave each of these mailboxes (held by `hold_marks`) out of the sending walk until its
    moment."""
    marks = cast(Table, DueMark.__table__)
    db.connection().execute(
        update(marks)
        .where(marks.c.mailbox_id == bindparam("mark_mailbox"))
        .values(nothing_due_before=bindparam("mark_until", type_=marks.c.nothing_due_before.type)),
        [{"mark_mailbox": m, "mark_until": moment} for m, moment in until.items()],
    )


def campaigns_to_mark(
    db: Session, mailbox_ids: list[int]
) -> dict[int, list[tuple[Campaign, datetime | None]]]:
    """The active campaigns of these mailboxes as committed now (those a claim read at its
    start refreshed), each with its earliest due step (one index probe each), by mailbox."""
    found: dict[int, list[tuple[Campaign, datetime | None]]] = {}
    for campaign, due in db.execute(
        select(Campaign, _earliest_due(Campaign.id))
        .where(Campaign.mailbox_id.in_(mailbox_ids), Campaign.status == CampaignStatus.ACTIVE)
        .order_by(Campaign.id)
        .execution_options(populate_existing=True)
    ):
        found.setdefault(campaign.mailbox_id, []).append((campaign, due))
    return found


def take_senders(
    db: Session, mailbox_ids: list[int], worker: str, now: datetime, lease: datetime
) -> list[int]:
    """The sender lease of each of these mailboxes that no other worker holds, taken in one
    statement before anything is read for them: two workers walking the same due list split
    it rather than both reading for every mailbox. Returns the ids taken, in the given order."""
    taken = set(
        db.scalars(
            update(Mailbox)
            .where(
                Mailbox.id.in_(mailbox_ids),
                or_(
                    Mailbox.sender_until.is_(None),
                    Mailbox.sender_until <= now,
                    Mailbox.sender == worker,
                ),
            )
            .values(sender=worker, sender_until=lease)
            .returning(Mailbox.id)
            .execution_options(synchronize_session=False)
        )
    )
    return [mailbox_id for mailbox_id in mailbox_ids if mailbox_id in taken]


def _watched() -> ColumnElement[bool]:
    """A mailbox with an active or paused campaign: its replies matter."""
    return exists().where(
        Campaign.mailbox_id == Mailbox.id,
        Campaign.status.in_((CampaignStatus.ACTIVE, CampaignStatus.PAUSED)),
    )


def next_inbox_read(db: Session, now: datetime) -> tuple[datetime | None, datetime | None]:
    """Among the mailboxes whose replies are read: the first inbox read due after `now`, and
    the first due moment of those already due (a mailbox never read is due `now`), which a
    pass leaves unread only while it waits for its newest sends' ids, or when its read
    failed. None for either when there is none. Each is the first row of the due index that
    qualifies, not an aggregate over every mailbox: a pass asks this whatever the fleet."""
    due = Mailbox.inbound_read_due_at
    read = and_(Mailbox.status == MailboxStatus.CONNECTED, _watched())

    def first(*where: ColumnElement[bool]) -> datetime | None:
        return db.scalar(select(due).where(read, *where).order_by(due).limit(1))

    never = db.scalar(select(Mailbox.id).where(read, due.is_(None)).limit(1))
    return first(due > now), now if never is not None else first(due <= now)


def mailboxes_to_read(
    db: Session, now: datetime, grace_since: datetime, limit: int
) -> list[tuple[int, datetime | None]]:
    """Up to `limit` connected mailboxes with an active or paused campaign (their replies
    matter) whose inbox is due a read, never read and longest due first: a mailbox whose
    `inbound_read_due_at` has come, unless the ids of a send since `grace_since` are still
    unknown (an answer to it could not be matched yet); but in any case when it fell due
    before `grace_since`.

    Ids and due moments only, and only the due ones: with thousands of mailboxes a pass must
    not load every row to find the few dozen due."""
    due = Mailbox.inbound_read_due_at
    read = select(Mailbox.id, due).where(Mailbox.status == MailboxStatus.CONNECTED, _watched())
    never: list[tuple[int, datetime | None]] = [
        (mailbox_id, None)
        for mailbox_id in db.scalars(
            read.with_only_columns(Mailbox.id)
            .where(due.is_(None))
            .order_by(Mailbox.id)
            .limit(limit)
        )
    ]
    if len(never) == limit:
        return never
    # Two index ranges, each read in the index's order and only as far as needed, rather than
    # one statement ordering "never read" before "due": no index gives that order, so it would
    # look at every due row, and PostgreSQL plans it as a scan of every watched mailbox.
    return never + [
        (mailbox_id, moment)
        for mailbox_id, moment in db.execute(
            read.where(
                due <= now,
                or_(due <= grace_since, Mailbox.id.not_in(_awaiting_ids(grace_since))),
            )
            .order_by(due, Mailbox.id)
            .limit(limit - len(never))
        )
    ]


def take_reads(db: Session, mailbox_ids: list[int], now: datetime, until: datetime) -> set[int]:
    """Take the reads of these due inboxes that no other worker took meanwhile: each is due
    again at `until` unless its read is done before (a worker that dies reading leaves it to
    the others then). Two workers walking the same due list read each inbox once."""
    due = Mailbox.inbound_read_due_at
    return set(
        db.scalars(
            update(Mailbox)
            .where(Mailbox.id.in_(mailbox_ids), or_(due.is_(None), due <= now))
            .values(inbound_read_due_at=until)
            .returning(Mailbox.id)
            .execution_options(synchronize_session=False)
        )
    )


def mailboxes_sent_since_read(db: Session, mailbox_ids: list[int]) -> set[int]:
    """Those of these mailboxes that claimed a send after their inbox's last read (or were
    never read): an answer or a bounce may be on its way."""
    return set(
        db.scalars(
            select(Mailbox.id).where(
                Mailbox.id.in_(mailbox_ids),
                or_(
                    Mailbox.inbound_checked_at.is_(None),
                    exists().where(
                        SendLedger.mailbox_id == Mailbox.id,
                        SendLedger.claimed_at > Mailbox.inbound_checked_at,
                    ),
                ),
            )
        )
    )


def _awaiting_ids(since: datetime) -> Select[int]:
    return (
        select(SendLedger.mailbox_id)
        .where(
            SendLedger.status == LedgerStatus.SENT,
            SendLedger.message_id_header == "",
            SendLedger.sent_at > since,
        )
        .distinct()
    )


def mailboxes_awaiting_ids(db: Session, since: datetime) -> set[int]:
    """Mailboxes with a send since `since` whose copy in Sent has not been found yet."""
    return set(db.scalars(_awaiting_ids(since)))


def active_campaigns_of(db: Session, mailbox_ids: list[int]) -> dict[int, list[Campaign]]:
    """The active campaigns of these mailboxes, with their steps, by mailbox."""
    found: dict[int, list[Campaign]] = {}
    for campaign in db.scalars(
        select(Campaign)
        .where(Campaign.mailbox_id.in_(mailbox_ids), Campaign.status == CampaignStatus.ACTIVE)
        .order_by(Campaign.id)
        .options(selectinload(Campaign.steps))
    ):
        found.setdefault(campaign.mailbox_id, []).append(campaign)
    return found


def mailboxes_by_id(db: Session, mailbox_ids: list[int]) -> dict[int, Mailbox]:
    return {m.id: m for m in db.scalars(select(Mailbox).where(Mailbox.id.in_(mailbox_ids)))}


def sends_since_of(
    db: Session, mailbox_ids: list[int], since: datetime
) -> dict[int, tuple[int, datetime | None]]:
    """Messages sent or in flight for each of these mailboxes since a moment, and the oldest
    of them, in one statement (mailboxes with none are absent)."""
    rows = db.execute(
        select(SendLedger.mailbox_id, func.count(), func.min(SendLedger.claimed_at))
        .where(
            SendLedger.mailbox_id.in_(mailbox_ids),
            SendLedger.claimed_at > since,
            SendLedger.status.in_(COUNTS_TOWARD_CAP),
        )
        .group_by(SendLedger.mailbox_id)
    )
    return {mailbox_id: (int(count), oldest) for mailbox_id, count, oldest in rows}


def _earliest_due(campaign_id: Any) -> ScalarSelect[datetime | None]:
    """The earliest due moment among a campaign's pending recipients (one index probe)."""
    return (
        select(Enrollment.next_due_at)
        .where(
            Enrollment.campaign_id == campaign_id,
            enrollment_pending(),
            Enrollment.next_due_at.is_not(None),
        )
        .order_by(Enrollment.next_due_at)
        .limit(1)
        .scalar_subquery()
    )


def due_enrollments(
    db: Session,
    campaign_ids: list[int],
    now: datetime,
    limit: int,
    *,
    read_through: datetime | None = None,
) -> list[Enrollment]:
    """Up to `limit` due recipients of these campaigns in due order, locked (skipping rows
    other workers hold).

    A follow-up (a recipient who was sent a step already) is only due once the mailbox's
    inbox was read at or after the moment it fell due (`read_through`, the last read; None
    when never read): a reply that came in before then stops it instead. First emails are
    not held back by this.

    Each campaign's earliest due moment is one probe of the pending index. Only campaigns
    that can contribute are read further: each gives its first `limit` due rows in index
    order and the earliest of those are taken, so the work depends on the batch size and
    the number of campaigns, never on the number of enrollments.
    """
    if not campaign_ids or limit <= 0:
        return []
    # Nothing can be held back when the inbox was read at or after now.
    held_back = (
        [] if read_through is not None and read_through >= now else [_read_before_due(read_through)]
    )
    if len(campaign_ids) == 1:
        # One campaign (the usual case): its earliest due rows straight from the index.
        return _locked(
            db,
            select(Enrollment)
            .where(
                Enrollment.campaign_id == campaign_ids[0],
                enrollment_pending(),
                Enrollment.next_due_at <= now,
                *held_back,
            )
            .order_by(Enrollment.next_due_at, Enrollment.id)
            .limit(limit),
        )
    firsts = db.execute(select(*(_earliest_due(c).label(f"c{c}") for c in campaign_ids))).one()
    due = sorted(
        (moment, campaign_id)
        for campaign_id, moment in zip(campaign_ids, firsts, strict=True)
        if moment is not None and moment <= now
    )
    if not held_back:
        # No row is held back: the campaigns due soonest are enough.
        due = due[:limit]
    if not due:
        return []
    arms = [
        select(Enrollment.id, Enrollment.next_due_at)
        .where(
            Enrollment.campaign_id == campaign_id,
            enrollment_pending(),
            Enrollment.next_due_at <= now,
            *held_back,
        )
        .order_by(Enrollment.next_due_at, Enrollment.id)
        .limit(limit)
        .subquery()
        for _, campaign_id in due
    ]
    merged = union_all(*(select(arm.c.id, arm.c.next_due_at) for arm in arms)).subquery()
    ids = list(
        db.scalars(select(merged.c.id).order_by(merged.c.next_due_at, merged.c.id).limit(limit))
    )
    return _locked(
        db,
        select(Enrollment)
        .where(Enrollment.id.in_(ids), enrollment_pending(), Enrollment.next_due_at <= now)
        .order_by(Enrollment.next_due_at, Enrollment.id),
    )


def _locked(db: Session, query: Select[Enrollment]) -> list[Enrollment]:
    """The rows, locked on PostgreSQL (skipping rows other workers hold)."""
    if is_postgres(db):
        query = query.with_for_update(skip_locked=True, of=Enrollment)
    return list(db.scalars(query))


def _read_before_due(read_through: datetime | None) -> ColumnElement[bool]:
    """A first email, or a follow-up that fell due before the inbox was last read."""
    if read_through is None:
        return Enrollment.steps_sent == 0
    return or_(Enrollment.steps_sent == 0, Enrollment.next_due_at <= read_through)


def take_send_slot(
    db: Session,
    mailbox_id: int,
    worker: str,
    now: datetime,
    next_at: datetime,
    lease: datetime,
    *,
    read_by: datetime,
) -> bool:
    """Compare-and-set the mailbox's pacing slot and its sender lease: True for the one
    worker that may send for it now. Its next inbox read is brought forward to `read_by` (an
    answer or a bounce of this send may come soon)."""
    due = Mailbox.inbound_read_due_at
    result = db.execute(
        update(Mailbox)
        .where(
            Mailbox.id == mailbox_id,
            Mailbox.status == MailboxStatus.CONNECTED,
            or_(Mailbox.send_not_before.is_(None), Mailbox.send_not_before <= now),
            or_(
                Mailbox.sender_until.is_(None),
                Mailbox.sender_until <= now,
                Mailbox.sender == worker,
            ),
        )
        .values(
            send_not_before=next_at,
            sender=worker,
            sender_until=lease,
            inbound_read_due_at=case((or_(due.is_(None), due > read_by), read_by), else_=due),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_sender(db: Session, mailbox_ids: list[int], worker: str) -> None:
    """The worker is done with these mailboxes for now: another may send for them."""
    db.execute(
        update(Mailbox)
        .where(Mailbox.id.in_(mailbox_ids), Mailbox.sender == worker)
        .values(sender_until=None)
        .execution_options(synchronize_session=False)
    )


def push_slots(db: Session, slots: dict[int, datetime]) -> None:
    """Move each mailbox's next send slot to at least the given moment, in one statement
    (the session's pending changes written first, as its own statements would)."""
    if not slots:
        return
    db.flush()
    table = cast(Table, Mailbox.__table__)
    later = func.greatest if is_postgres(db) else func.max
    db.connection().execute(
        update(table)
        .where(table.c.id == bindparam("slot_mailbox"))
        .values(
            send_not_before=func.coalesce(
                later(
                    table.c.send_not_before,
                    bindparam("slot_at", type_=table.c.send_not_before.type),
                ),
                bindparam("slot_at", type_=table.c.send_not_before.type),
            )
        ),
        [{"slot_mailbox": m, "slot_at": at} for m, at in slots.items()],
    )


def release_senders(db: Session, workers: set[str]) -> list[int]:
    """These workers are gone: the mailboxes they were sending for are anyone's now (their
    ids are returned)."""
    if not workers:
        return []
    return list(
        db.scalars(
            update(Mailbox)
            .where(Mailbox.sender.in_(workers), Mailbox.sender_until.is_not(None))
            .values(sender_until=None)
            .returning(Mailbox.id)
            .execution_options(synchronize_session=False)
        )
    )


def hold_mailbox(db: Session, mailbox_id: int, until: datetime) -> None:
    """Push a mailbox's next send back (a provider asked us to wait)."""
    push_slots(db, {mailbox_id: until})


def ledger_rows(db: Session, keys: list[tuple[int, int]]) -> dict[tuple[int, int], SendLedger]:
    """Existing ledger rows by (enrollment, step position)."""
    if not keys:
        return {}
    rows = db.scalars(
        select(SendLedger).where(
            SendLedger.enrollment_id.in_({enrollment for enrollment, _ in keys})
        )
    )
    wanted = set(keys)
    return {
        (row.enrollment_id, row.step_position): row
        for row in rows
        if (row.enrollment_id, row.step_position) in wanted
    }


def sent_rows(db: Session, enrollment_ids: list[int]) -> dict[int, list[SendLedger]]:
    """Each recipient's sent messages in step order."""
    found: dict[int, list[SendLedger]] = {e: [] for e in enrollment_ids}
    if not enrollment_ids:
        return found
    for row in db.scalars(
        select(SendLedger)
        .where(
            SendLedger.enrollment_id.in_(enrollment_ids),
            SendLedger.status == LedgerStatus.SENT,
        )
        .order_by(SendLedger.enrollment_id, SendLedger.step_position)
    ):
        found[row.enrollment_id].append(row)
    return found


def open_gates(db: Session, ledger_ids: list[int], worker: str, lease_until: datetime) -> set[int]:
    """Mark claims as being handed to the provider, each only if nothing forbids it right
    now; returns the ids marked.

    One statement: each claim is still this worker's, its campaign active, its mailbox
    connected and its recipient still pending. On PostgreSQL the campaign and mailbox rows
    are share-locked, so a pause either lands before this (and the send is released) or
    waits until it commits (and then sees the send in flight).
    """
    return set(
        db.scalars(
            _gate(is_postgres(db)),
            {"gate_ledgers": ledger_ids, "gate_worker": worker, "gate_lease": lease_until},
        )
    )


@functools.cache
def _gate(postgres: bool) -> ReturningUpdate[int]:
    """The gate's statement, built once per dialect: it runs before every send."""
    campaign_ok = select(Campaign.id).where(
        Campaign.id == SendLedger.campaign_id, Campaign.status == CampaignStatus.ACTIVE
    )
    mailbox_ok = select(Mailbox.id).where(
        Mailbox.id == SendLedger.mailbox_id, Mailbox.status == MailboxStatus.CONNECTED
    )
    if postgres:
        campaign_ok = campaign_ok.with_for_update(read=True)
        mailbox_ok = mailbox_ok.with_for_update(read=True)
    recipient_ok = select(Enrollment.id).where(
        Enrollment.id == SendLedger.enrollment_id, Enrollment.status.in_(PENDING)
    )
    return (
        update(SendLedger)
        .where(
            SendLedger.id.in_(bindparam("gate_ledgers", expanding=True)),
            lifecycle.ledger_may(LedgerEvent.HANDED_OVER),
            SendLedger.worker == bindparam("gate_worker"),
            campaign_ok.exists(),
            mailbox_ok.exists(),
            recipient_ok.exists(),
        )
        .values(
            status=lifecycle.ledger_target(LedgerEvent.HANDED_OVER),
            lease_until=bindparam("gate_lease", type_=SendLedger.lease_until.type),
            error="",
        )
        .returning(SendLedger.id)
        .execution_options(synchronize_session=False)
    )


def expired_claims(db: Session, now: datetime, gone: set[str]) -> list[SendLedger]:
    """Claims whose worker stopped before handing them to the provider: their lease ended,
    or their worker is `gone` (its liveness lock is free).

    Locked on PostgreSQL (skipping rows another transaction holds): a worker that is alive
    after all and opens the gate of one of these at the same moment either gates it first
    (the row is then no longer a claim and is left alone here) or finds it back in line.
    """
    ended = SendLedger.lease_until < now
    query = select(SendLedger).where(
        SendLedger.status == LedgerStatus.CLAIMED,
        or_(ended, SendLedger.worker.in_(gone)) if gone else ended,
    )
    if is_postgres(db):
        query = query.with_for_update(skip_locked=True)
    return list(db.scalars(query))


def _with_host(now: datetime) -> Select[int]:
    """Sends handed to a host, their outcome not known yet and their lease still running
    (those whose lease ended are `unsettled`)."""
    return select(SendLedger.id).where(
        SendLedger.status == LedgerStatus.UNKNOWN, SendLedger.lease_until > now
    )


def handed_over_by(db: Session, workers: set[str], now: datetime, limit: int = 50) -> list[int]:
    """Such sends of these workers, oldest first."""
    if not workers:
        return []
    query = _with_host(now).where(SendLedger.worker.in_(workers))
    return list(db.scalars(query.order_by(SendLedger.id).limit(limit)))


def still_handed_over(db: Session, ledger_ids: list[int], now: datetime) -> list[int]:
    """Those of these sends that are still such sends."""
    return list(db.scalars(_with_host(now).where(SendLedger.id.in_(ledger_ids))))


def unsettled(db: Session, now: datetime, limit: int = 50) -> list[SendLedger]:
    """Sends whose outcome is unknown and no worker is waiting on any more."""
    return list(
        db.scalars(
            select(SendLedger)
            .where(SendLedger.status == LedgerStatus.UNKNOWN, SendLedger.lease_until <= now)
            .order_by(SendLedger.id)
            .limit(limit)
        )
    )


def next_unsettled_at(db: Session) -> datetime | None:
    """When the soonest send of unknown outcome may be looked for in Sent."""
    return db.scalar(
        select(func.min(SendLedger.lease_until)).where(SendLedger.status == LedgerStatus.UNKNOWN)
    )


def in_flight(db: Session, campaign_ids: list[int], now: datetime) -> int:
    """Sends a worker is handing to a provider right now for these campaigns.

    A send whose outcome became unknown carries its error text: it was handed over earlier
    and is in no worker's hands any more.
    """
    return (
        db.scalar(
            select(func.count())
            .select_from(SendLedger)
            .where(
                SendLedger.campaign_id.in_(campaign_ids),
                SendLedger.status == LedgerStatus.UNKNOWN,
                SendLedger.lease_until > now,
                SendLedger.error == "",
            )
        )
        or 0
    )


def missing_metadata(db: Session, now: datetime, limit: int = 20) -> list[SendLedger]:
    """Sent within METADATA_LOOKUP without a known Message-ID, not looked for just now."""
    return list(
        db.scalars(
            select(SendLedger)
            .where(
                SendLedger.status == LedgerStatus.SENT,
                SendLedger.message_id_header == "",
                SendLedger.sent_at > now - METADATA_LOOKUP,
                or_(SendLedger.lease_until.is_(None), SendLedger.lease_until <= now),
            )
            .order_by(SendLedger.id)
            .limit(limit)
        )
    )


def earliest_due_by_campaign(db: Session, now: datetime) -> list[tuple[Campaign, datetime]]:
    """Each active campaign of a connected mailbox with its earliest due step, but those of
    mailboxes known to have nothing due now (`leave_out_until`; `next_marked` says when they
    may): with thousands of quiet mailboxes a pass must not load every campaign."""
    due = _earliest_due(Campaign.id)
    rows = db.execute(
        select(Campaign, due)
        .select_from(DueMark)
        .join(Mailbox, Mailbox.id == DueMark.mailbox_id)
        .join(Campaign, Campaign.mailbox_id == Mailbox.id)
        .where(
            _unmarked(now),
            Campaign.status == CampaignStatus.ACTIVE,
            Mailbox.status == MailboxStatus.CONNECTED,
        )
        .options(selectinload(Campaign.mailbox))
    )
    return [(campaign, moment) for campaign, moment in rows if moment is not None]


def next_marked(db: Session, now: datetime) -> datetime | None:
    """The soonest moment a mailbox left out of the walk may have something due (one index
    probe)."""
    return db.scalar(
        select(DueMark.nothing_due_before)
        .where(DueMark.nothing_due_before > now)
        .order_by(DueMark.nothing_due_before)
        .limit(1)
    )


def sent_rows_matching(
    db: Session, mailbox_id: int, message_ids: list[str], thread_id: str
) -> list[SendLedger]:
    """Our sent messages an inbound message answers: by Message-ID, else by thread."""
    conditions: list[ColumnElement[bool]] = []
    if message_ids:
        conditions.append(SendLedger.message_id_header.in_(message_ids))
    if thread_id:
        conditions.append(SendLedger.thread_id == thread_id)
    if not conditions:
        return []
    return list(
        db.scalars(
            select(SendLedger)
            .where(
                SendLedger.mailbox_id == mailbox_id,
                SendLedger.status == LedgerStatus.SENT,
                or_(*conditions),
            )
            .order_by(SendLedger.id.desc())
        )
    )


def copies_taken(
    db: Session, mailbox_id: int, provider_ids: list[str], *, besides: int
) -> set[str]:
    """Which of these Sent copies other sends of the mailbox are already known to be."""
    if not provider_ids:
        return set()
    return set(
        db.scalars(
            select(SendLedger.provider_message_id).where(
                SendLedger.mailbox_id == mailbox_id,
                SendLedger.provider_message_id.in_(provider_ids),
                SendLedger.id != besides,
            )
        )
    )


def sends_ahead_for_copies(db: Session, row: SendLedger, recipient: str) -> int:
    """How many other sends of the mailbox to `recipient` with `row`'s subject have first
    claim on an unattributed copy in Sent: those known to have gone (all of them for a send
    whose outcome is unknown, older ones for a sent one), then older unknown ones."""
    older = SendLedger.claimed_at < row.claimed_at
    sent = SendLedger.status == LedgerStatus.SENT
    first_claim = (
        and_(sent, older)
        if row.status is LedgerStatus.SENT
        else or_(sent, and_(SendLedger.status == LedgerStatus.UNKNOWN, older))
    )
    return (
        db.scalar(
            select(func.count())
            .select_from(SendLedger)
            .join(Enrollment, Enrollment.id == SendLedger.enrollment_id)
            .where(
                SendLedger.mailbox_id == row.mailbox_id,
                SendLedger.id != row.id,
                SendLedger.subject == row.subject,
                SendLedger.provider_message_id == "",
                Enrollment.email == recipient,
                first_claim,
            )
        )
        or 0
    )


def latest_sends(
    db: Session, campaign_id: int, since: datetime | None, limit: int
) -> list[tuple[int, datetime, EnrollmentStatus]]:
    """A campaign's `limit` latest sends that were delivered or refused for their recipient,
    newest first, made after `since`: (recipient, when, the recipient's status now).

    A send the host accepted counts when it went (`sent_at`, through the campaign's sent-time
    index); one the host refused for its recipient (a hard bounce at sending: the row failed,
    the recipient Bounced) counts when it was claimed.
    """
    delivered = (
        select(SendLedger.enrollment_id, SendLedger.sent_at, Enrollment.status)
        .join(Enrollment, Enrollment.id == SendLedger.enrollment_id)
        .where(
            SendLedger.campaign_id == campaign_id,
            SendLedger.status == LedgerStatus.SENT,
            SendLedger.sent_at > since if since is not None else SendLedger.sent_at.is_not(None),
        )
        .order_by(SendLedger.sent_at.desc())
        .limit(limit)
    )
    refused = (
        select(SendLedger.enrollment_id, SendLedger.claimed_at, Enrollment.status)
        .join(Enrollment, Enrollment.id == SendLedger.enrollment_id)
        .where(
            SendLedger.campaign_id == campaign_id,
            SendLedger.status == LedgerStatus.FAILED,
            Enrollment.status == EnrollmentStatus.BOUNCED,
            SendLedger.claimed_at > since
            if since is not None
            else SendLedger.claimed_at.is_not(None),
        )
        .order_by(SendLedger.claimed_at.desc())
        .limit(limit)
    )
    rows = [
        (enrollment_id, moment, status)
        for query in (delivered, refused)
        for enrollment_id, moment, status in db.execute(query)
        if moment is not None
    ]
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows[:limit]


def held_enrollments(
    db: Session, campaign_id: int, now: datetime
) -> list[tuple[Enrollment, datetime]]:
    """A campaign's recipients held at `now` after an automatic reply, each with the moment
    the hold ends (no email to them before it), soonest first. Only recipients with a step
    still to go: a held recipient who replied or finished meanwhile is not waiting."""
    rows = db.scalars(
        select(Enrollment)
        .where(
            Enrollment.campaign_id == campaign_id,
            Enrollment.held_until > now,
            enrollment_pending(),
        )
        .order_by(Enrollment.held_until, Enrollment.id)
    )
    return [(enrollment, enrollment.held_until) for enrollment in rows if enrollment.held_until]


def ended_holds(db: Session, now: datetime, limit: int = 500) -> list[Enrollment]:
    """Recipients whose hold has ended but is still recorded, oldest first."""
    return list(
        db.scalars(
            select(Enrollment)
            .where(Enrollment.held_until <= now)
            .order_by(Enrollment.held_until, Enrollment.id)
            .limit(limit)
        )
    )


def release_hold(db: Session, enrollment_id: int, held_until: datetime) -> bool:
    """Clear a hold that ended, once: True for the one caller whose update found it."""
    result = db.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment_id, Enrollment.held_until == held_until)
        .values(held_until=None, hold_reason="")
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- Recording an outcome (outcomes.py, inbound.py, unsubscribe.py, bounce_guard.py) ---


@dataclass(frozen=True)
class SendToRecord:
    """A send the host accepted, with what recording it reads, loaded in one statement.

    The recipient and campaign are held here so that the session (which keeps only weak
    references) answers their look-ups from what it loaded.
    """

    row: SendLedger
    enrollment: Enrollment | None
    campaign: Campaign | None
    # The campaign's steps at the send's position and the next, by position.
    steps: dict[int, CampaignStep]
    # Whether any of the campaign's recipients has bounced (the bounce guard looks then).
    campaign_has_bounces: bool


def _send_to_record_query() -> Select[
    SendLedger, Enrollment, Campaign, CampaignStep, CampaignStep, bool
]:
    here, following = aliased(CampaignStep), aliased(CampaignStep)
    bounced = aliased(Enrollment)
    has_bounces = (
        exists()
        .where(
            bounced.campaign_id == SendLedger.campaign_id,
            bounced.status == EnrollmentStatus.BOUNCED,
        )
        .label("has_bounces")
    )
    return (
        select(SendLedger, Enrollment, Campaign, here, following, has_bounces)
        .outerjoin(Enrollment, Enrollment.id == SendLedger.enrollment_id)
        .outerjoin(Campaign, Campaign.id == SendLedger.campaign_id)
        .outerjoin(
            here,
            and_(
                here.campaign_id == SendLedger.campaign_id,
                here.position == SendLedger.step_position,
            ),
        )
        .outerjoin(
            following,
            and_(
                following.campaign_id == SendLedger.campaign_id,
                following.position == SendLedger.step_position + 1,
            ),
        )
        .where(SendLedger.id == bindparam("ledger_id"))
    )


# Built once: building it (aliases adapt every column) costs more than running it.
_SEND_TO_RECORD = _send_to_record_query()


def send_to_record(db: Session, ledger_id: int) -> SendToRecord | None:
    """A ledger row with its recipient, its campaign, the steps at its position and the
    next one, and whether the campaign has a bounced recipient: one statement in place of
    five, for every send recorded."""
    found = db.execute(_SEND_TO_RECORD, {"ledger_id": ledger_id}).one_or_none()
    if found is None:
        return None
    row, enrollment, campaign, step, next_step, campaign_has_bounces = found
    steps = {s.position: s for s in (step, next_step) if s is not None}
    return SendToRecord(row, enrollment, campaign, steps, bool(campaign_has_bounces))


def campaign_steps(db: Session, campaign_id: int) -> list[CampaignStep]:
    """A campaign's steps in order."""
    return list(
        db.scalars(
            select(CampaignStep)
            .where(CampaignStep.campaign_id == campaign_id)
            .order_by(CampaignStep.position)
        )
    )


def steps_at(db: Session, campaign_id: int, positions: tuple[int, ...]) -> dict[int, CampaignStep]:
    """A campaign's steps at these positions, by position (a sent step and the next one)."""
    return {
        step.position: step
        for step in db.scalars(
            select(CampaignStep).where(
                CampaignStep.campaign_id == campaign_id,
                CampaignStep.position.in_(positions),
            )
        )
    }


def reset_consecutive_failures(db: Session, campaign_id: int) -> None:
    """A send went: the campaign's run of failures is over (no write when there was none)."""
    db.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.consecutive_failures != 0)
        .values(consecutive_failures=0)
        .execution_options(synchronize_session=False)
    )


def suppression_of(db: Session, workspace_id: int, email: str) -> Suppression | None:
    return db.scalar(
        select(Suppression).where(
            Suppression.workspace_id == workspace_id, Suppression.email == email
        )
    )


def ledger_row_at_step(db: Session, enrollment_id: int, position: int) -> SendLedger | None:
    """A recipient's ledger row for one step."""
    return db.scalar(
        select(SendLedger).where(
            SendLedger.enrollment_id == enrollment_id,
            SendLedger.step_position == position,
        )
    )


def follow_ups_due_unread(db: Session, mailbox_ids: list[int], now: datetime) -> set[int]:
    """Those of these mailboxes with an active campaign's follow-up due now that fell due
    after the mailbox's inbox was last read (or never read)."""
    return set(
        db.scalars(
            select(Campaign.mailbox_id)
            .join(Enrollment, Enrollment.campaign_id == Campaign.id)
            .join(Mailbox, Mailbox.id == Campaign.mailbox_id)
            .where(
                Campaign.mailbox_id.in_(mailbox_ids),
                Campaign.status == CampaignStatus.ACTIVE,
                enrollment_pending(),
                Enrollment.steps_sent > 0,
                Enrollment.next_due_at <= now,
                or_(
                    Mailbox.inbound_checked_at.is_(None),
                    Enrollment.next_due_at > Mailbox.inbound_checked_at,
                ),
            )
            .distinct()
        )
    )


def inbound_checked(db: Session, mailbox_ids: list[int]) -> dict[int, datetime | None]:
    """When each of these mailboxes' inbox was last read (None: never)."""
    return dict(
        db.execute(
            select(Mailbox.id, Mailbox.inbound_checked_at).where(Mailbox.id.in_(mailbox_ids))
        ).all()
    )


def last_status_changes(db: Session, mailbox_ids: list[int]) -> dict[int, datetime | None]:
    """When any campaign of each of these mailboxes last changed status."""
    return dict(
        db.execute(
            select(Campaign.mailbox_id, func.max(Campaign.status_changed_at))
            .where(Campaign.mailbox_id.in_(mailbox_ids))
            .group_by(Campaign.mailbox_id)
        ).all()
    )


def enrollments_to_unsubscribe(db: Session, workspace_id: int, email: str) -> list[Enrollment]:
    """The address's sequences in the workspace that an unsubscribe may still stop."""
    return list(
        db.scalars(
            select(Enrollment)
            .join(Campaign, Campaign.id == Enrollment.campaign_id)
            .where(
                Campaign.workspace_id == workspace_id,
                Enrollment.email == email,
                lifecycle.enrollment_may(EnrollmentEvent.UNSUBSCRIBED),
            )
        )
    )


def has_bounced(db: Session, campaign_id: int) -> bool:
    """Whether any of the campaign's recipients has bounced."""
    found = db.scalar(
        select(Enrollment.id)
        .where(
            Enrollment.campaign_id == campaign_id,
            Enrollment.status == EnrollmentStatus.BOUNCED,
        )
        .limit(1)
    )
    return found is not None


# --- The next email's real time (forecast.py) and "Send a test" (test_send.py) ---


def first_due_by_campaign(db: Session, campaign_ids: list[int]) -> dict[int, datetime | None]:
    """Each campaign's earliest pending recipient's due time, by campaign id."""
    return dict(
        db.execute(
            select(Enrollment.campaign_id, func.min(Enrollment.next_due_at))
            .where(Enrollment.campaign_id.in_(campaign_ids), enrollment_pending())
            .group_by(Enrollment.campaign_id)
        ).all()
    )


def queued_on_mailbox(
    db: Session, mailbox_id: int, horizon: datetime, limit: int
) -> list[tuple[int, int, datetime | None, datetime | None, str]]:
    """The first `limit` pending recipients due by `horizon` in the mailbox's active
    campaigns, in claim order: id, campaign, due time, hold's end, time zone."""
    rows = db.execute(
        select(
            Enrollment.id,
            Enrollment.campaign_id,
            Enrollment.next_due_at,
            Enrollment.held_until,
            Enrollment.timezone,
        )
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(
            Campaign.mailbox_id == mailbox_id,
            Campaign.status == CampaignStatus.ACTIVE,
            enrollment_pending(),
            Enrollment.next_due_at <= horizon,
        )
        .order_by(Enrollment.next_due_at, Enrollment.id)
        .limit(limit)
    ).all()
    return [(eid, cid, due, held, zone) for eid, cid, due, held, zone in rows]


def campaigns_by_id(db: Session, campaign_ids: list[int]) -> dict[int, Campaign]:
    """These campaigns, by id (steps not loaded)."""
    if not campaign_ids:
        return {}
    return {c.id: c for c in db.scalars(select(Campaign).where(Campaign.id.in_(campaign_ids)))}


def test_sends_since(db: Session, user_id: int, since: datetime) -> tuple[int, datetime | None]:
    """How many tests the user sent after `since`, and the oldest one's time."""
    count, oldest = db.execute(
        select(func.count(), func.min(TestSend.sent_at)).where(
            TestSend.user_id == user_id, TestSend.sent_at > since
        )
    ).one()
    return int(count or 0), oldest


def pending_in_due_order(
    db: Session, campaign_id: int
) -> list[tuple[int, str, int, datetime | None, str]]:
    """A campaign's pending recipients with a due moment, in due order: (id, email, steps
    sent, due, their own time zone)."""
    return [
        (int(eid), str(email), int(steps_sent), due, str(zone or ""))
        for eid, email, steps_sent, due, zone in db.execute(
            select(
                Enrollment.id,
                Enrollment.email,
                Enrollment.steps_sent,
                Enrollment.next_due_at,
                Enrollment.timezone,
            )
            .where(
                Enrollment.campaign_id == campaign_id,
                enrollment_pending(),
                Enrollment.next_due_at.is_not(None),
            )
            .order_by(Enrollment.next_due_at, Enrollment.id)
        )
    ]


def move_due_if_unchanged(db: Session, moves: dict[int, tuple[datetime, datetime]]) -> None:
    """Move each recipient's due moment from `before` to `after`, only if still pending and
    still due at `before` (a reply that arrived in between wins). On the connection, not the
    session: one executemany statement, a compare-and-set per recipient (the session would
    read it as a bulk update by primary key)."""
    db.connection().execute(
        update(Enrollment)
        .where(
            Enrollment.id == bindparam("eid"),
            enrollment_pending(),
            Enrollment.next_due_at == bindparam("before"),
        )
        .values(next_due_at=bindparam("after")),
        [{"eid": eid, "before": before, "after": after} for eid, (before, after) in moves.items()],
    )


def ledger_rows_at_steps(
    db: Session, enrollment_id: int, positions: tuple[int, ...]
) -> list[SendLedger]:
    """A recipient's ledger rows for these steps."""
    return list(
        db.scalars(
            select(SendLedger).where(
                SendLedger.enrollment_id == enrollment_id,
                SendLedger.step_position.in_(positions),
            )
        )
    )


def campaign_mailbox_id(db: Session, campaign_id: int) -> int:
    """The mailbox a campaign sends from."""
    return int(db.scalars(select(Campaign.mailbox_id).where(Campaign.id == campaign_id)).one())


def due_in_other_campaigns(db: Session, campaign: Campaign, now: datetime) -> list[datetime]:
    """Due moments (due by `now`) of the pending recipients of the mailbox's other active
    campaigns, earliest first."""
    found = db.scalars(
        select(Enrollment.next_due_at)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(
            Campaign.mailbox_id == campaign.mailbox_id,
            Campaign.id != campaign.id,
            Campaign.status == CampaignStatus.ACTIVE,
            enrollment_pending(),
            Enrollment.next_due_at <= now,
        )
        .order_by(Enrollment.next_due_at)
        .limit(50_000)
    )
    return [when for when in found if when is not None]


def claims_in_last_day(db: Session, mailbox_id: int, now: datetime) -> list[datetime]:
    """When the mailbox's sends that count toward its rolling daily cap were claimed, over
    the day before `now`."""
    claims = db.scalars(
        select(SendLedger.claimed_at).where(
            SendLedger.mailbox_id == mailbox_id,
            SendLedger.claimed_at > now - timedelta(days=1),
            SendLedger.status.in_(COUNTS_TOWARD_CAP),
        )
    )
    return [claim for claim in claims if claim is not None]


def status_counts_since(
    db: Session, campaign_id: int, statuses: tuple[EnrollmentStatus, ...], since: datetime
) -> dict[EnrollmentStatus, int]:
    """How many of the campaign's recipients took each of `statuses` since `since`."""
    return {
        status: int(count)
        for status, count in db.execute(
            select(Enrollment.status, func.count())
            .where(
                Enrollment.campaign_id == campaign_id,
                Enrollment.status.in_(statuses),
                Enrollment.status_changed_at >= since,
            )
            .group_by(Enrollment.status)
        )
    }


# --- Which workers are alive (liveness.py) ---

# The first half of every liveness lock's two-part key (PostgreSQL advisory locks), so that
# they cannot be mistaken for another application's advisory locks in the same database.
LIVENESS_LOCKS = 0x5357
# PostgreSQL's lock table, as the pg_locks view shows it: an advisory lock taken with a key of
# two integers shows them as classid and objid, with objsubid 2
# (https://www.postgresql.org/docs/current/view-pg-locks.html).
_PG_LOCKS = table(
    "pg_locks",
    column("locktype"),
    column("database"),
    column("classid"),
    column("objid"),
    column("objsubid"),
    column("granted"),
)
_PG_DATABASE = table("pg_database", column("oid"), column("datname"))


def register_worker(db: Session, name: str, host: str, pid: int, now: datetime) -> int:
    """A worker about to hold its liveness lock: the lock's key."""
    row = DispatchWorker(name=name, host=host, pid=pid, started_at=now)
    db.add(row)
    db.flush()
    return row.key


def take_liveness_lock(db: Session, key: int) -> bool:
    """Take the worker's advisory lock for the life of this session's connection (PostgreSQL);
    False when it is already held."""
    return bool(db.scalar(select(func.pg_try_advisory_lock(LIVENESS_LOCKS, key))))


def ping(db: Session) -> None:
    """A round trip on the session's connection: raises when it is gone."""
    db.execute(select(literal(1)))


def registered_workers(db: Session) -> list[DispatchWorker]:
    return list(db.scalars(select(DispatchWorker).order_by(DispatchWorker.key)))


def workers_with_lock(db: Session) -> list[tuple[DispatchWorker, bool]]:
    """Every registered worker and whether its liveness lock is held now (PostgreSQL: granted
    advisory locks of this database in pg_locks; the server frees a session's locks when its
    connection ends)."""
    held = exists().where(
        _PG_LOCKS.c.locktype == "advisory",
        _PG_LOCKS.c.database
        == select(_PG_DATABASE.c.oid)
        .where(_PG_DATABASE.c.datname == func.current_database())
        .scalar_subquery(),
        _PG_LOCKS.c.classid == LIVENESS_LOCKS,
        _PG_LOCKS.c.objid == DispatchWorker.key,
        _PG_LOCKS.c.objsubid == 2,
        _PG_LOCKS.c.granted.is_(True),
    )
    return [
        (worker, bool(locked))
        for worker, locked in db.execute(
            select(DispatchWorker, held.label("locked")).order_by(DispatchWorker.key)
        )
    ]


def forget_workers(db: Session, keys: set[int]) -> None:
    """Registrations whose lock is free: those workers are gone."""
    if keys:
        db.execute(
            delete(DispatchWorker)
            .where(DispatchWorker.key.in_(keys))
            .execution_options(synchronize_session=False)
        )
