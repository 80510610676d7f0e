"""The sending lifecycle's tables: every status and event pair, legal or refused."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sendwell.kit.errors import Conflict
from sendwell.models import (
    Campaign,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    SendLedger,
    User,
    lifecycle,
)
from sendwell.models.lifecycle import EnrollmentEvent, LedgerEvent
from tests.campaigns.test_service import add, make_campaign, make_mailbox, make_user

E = EnrollmentStatus
L = LedgerStatus
P = (E.NOT_STARTED, E.IN_PROGRESS)

# What each event may do, written out again by hand: the table in the code must say the same.
ENROLLMENT_LEGAL = {
    EnrollmentEvent.STEP_SENT: {E.NOT_STARTED: E.IN_PROGRESS, E.IN_PROGRESS: E.IN_PROGRESS},
    EnrollmentEvent.LAST_STEP_SENT: {E.NOT_STARTED: E.COMPLETED, E.IN_PROGRESS: E.COMPLETED},
    EnrollmentEvent.STEPS_RAN_OUT: {E.NOT_STARTED: E.COMPLETED, E.IN_PROGRESS: E.COMPLETED},
    EnrollmentEvent.STEPS_SKIPPED: {E.NOT_STARTED: E.IN_PROGRESS, E.IN_PROGRESS: E.IN_PROGRESS},
    EnrollmentEvent.FIRST_STEP_UNDONE: {
        E.NOT_STARTED: E.NOT_STARTED,
        E.IN_PROGRESS: E.NOT_STARTED,
        E.COMPLETED: E.NOT_STARTED,
        E.PAUSED: E.PAUSED,
    },
    EnrollmentEvent.STEP_UNDONE: {
        E.NOT_STARTED: E.IN_PROGRESS,
        E.IN_PROGRESS: E.IN_PROGRESS,
        E.COMPLETED: E.IN_PROGRESS,
        E.PAUSED: E.PAUSED,
    },
    EnrollmentEvent.REPLIED: dict.fromkeys((*P, E.COMPLETED, E.PAUSED), E.REPLIED),
    EnrollmentEvent.BOUNCED: dict.fromkeys((*P, E.COMPLETED, E.PAUSED), E.BOUNCED),
    EnrollmentEvent.UNSUBSCRIBED: dict.fromkeys((*P, E.PAUSED), E.UNSUBSCRIBED),
    EnrollmentEvent.GAVE_UP: dict.fromkeys((*P, E.PAUSED), E.FAILED),
    EnrollmentEvent.PAUSED: {E.NOT_STARTED: E.PAUSED, E.IN_PROGRESS: E.PAUSED},
    EnrollmentEvent.RESUMED: {E.PAUSED: E.IN_PROGRESS},
    EnrollmentEvent.RESUMED_UNSTARTED: {E.PAUSED: E.NOT_STARTED},
    EnrollmentEvent.REMOVED: dict.fromkeys((*P, E.PAUSED, E.FAILED), E.REMOVED),
    EnrollmentEvent.MARKED_REPLIED: dict.fromkeys((*P, E.PAUSED, E.COMPLETED, E.FAILED), E.REPLIED),
    EnrollmentEvent.MOVED: dict.fromkeys((*P, E.PAUSED, E.COMPLETED, E.FAILED), E.MOVED),
}
LEDGER_LEGAL: dict[LedgerEvent, dict[L | None, L]] = {
    LedgerEvent.CLAIMED: {None: L.CLAIMED, L.RETRY: L.CLAIMED},
    LedgerEvent.HANDED_OVER: {L.CLAIMED: L.UNKNOWN},
    LedgerEvent.SENT: {L.UNKNOWN: L.SENT, L.RETRY: L.SENT},
    LedgerEvent.BACK_IN_LINE: {L.CLAIMED: L.RETRY, L.UNKNOWN: L.RETRY, L.RETRY: L.RETRY},
    LedgerEvent.GAVE_UP: {L.CLAIMED: L.FAILED, L.UNKNOWN: L.FAILED},
    LedgerEvent.UNDONE: {L.SENT: L.RETRY},
    LedgerEvent.SKIPPED: {None: L.SKIPPED, L.RETRY: L.SKIPPED},
}


@pytest.fixture
def user(db: Session) -> User:
    return make_user(db)


@pytest.fixture
def campaign(db: Session, user: User) -> Campaign:
    campaign = make_campaign(db, user, make_mailbox(db, user))
    add(db, user, campaign)
    return campaign


def recipient(db: Session, campaign: Campaign) -> Enrollment:
    return db.scalars(select(Enrollment).where(Enrollment.campaign_id == campaign.id)).one()


def test_the_tables_are_the_ones_written_here() -> None:
    written = {
        (source, event): to
        for event, moves in ENROLLMENT_LEGAL.items()
        for source, to in moves.items()
    }
    assert written == lifecycle.ENROLLMENT_TRANSITIONS
    written_ledger = {
        (source, event): to for event, moves in LEDGER_LEGAL.items() for source, to in moves.items()
    }
    assert written_ledger == lifecycle.LEDGER_TRANSITIONS


@pytest.mark.parametrize("event", list(EnrollmentEvent))
def test_every_recipient_transition_legal_or_refused(
    db: Session, campaign: Campaign, event: EnrollmentEvent
) -> None:
    """Each event tried from every status (one recipient, set to each status in turn)."""
    enrollment = recipient(db, campaign)
    for status in EnrollmentStatus:
        enrollment.status, enrollment.status_changed_at = status, None
        db.flush()
        expected = ENROLLMENT_LEGAL[event].get(status)
        if expected is None:
            with pytest.raises(Conflict) as refused:
                lifecycle.enroll(enrollment, event)
            assert refused.value.code == "illegal_recipient_transition"
            assert "grace@example.com is " in refused.value.message
            db.flush()
            db.expire_all()
            assert recipient(db, campaign).status is status, (status, event)
        else:
            assert lifecycle.enroll(enrollment, event) is expected
            db.flush()
            db.expire_all()
            stored = recipient(db, campaign)
            assert stored.status is expected, (status, event)
            assert (stored.status_changed_at is not None) is (expected is not status)
        enrollment = recipient(db, campaign)


@pytest.mark.parametrize("event", list(LedgerEvent))
def test_every_send_transition_legal_or_refused(
    db: Session, campaign: Campaign, event: LedgerEvent
) -> None:
    """Each event tried on a new send and on a send in every status."""
    enrollment = recipient(db, campaign)
    for position, status in enumerate([None, *LedgerStatus], start=1):
        row = SendLedger(
            enrollment_id=enrollment.id,
            campaign_id=campaign.id,
            mailbox_id=campaign.mailbox_id,
            step_position=position,
            tag=uuid.uuid4().hex,
        )
        if status is not None:
            row.status = status
        expected = LEDGER_LEGAL[event].get(status)
        if expected is None:
            with pytest.raises(Conflict) as refused:
                lifecycle.ledger(row, event)
            assert refused.value.code == "illegal_send_transition"
            assert row.status is status
            continue
        assert lifecycle.ledger(row, event) is expected
        db.add(row)
        db.flush()
        db.expire_all()
        stored = db.get(SendLedger, row.id)
        assert stored is not None
        assert stored.status is expected, (status, event)


@pytest.mark.parametrize("event", list(LedgerEvent))
def test_a_statement_over_many_sends_changes_only_legal_sources(
    db: Session, campaign: Campaign, event: LedgerEvent
) -> None:
    """The WHERE a bulk update takes from the module lets exactly the table's sources change."""
    targets = set(LEDGER_LEGAL[event].values())
    if len(targets) != 1:
        with pytest.raises(ValueError, match="does not lead to one status"):
            lifecycle.ledger_target(event)
        return
    enrollment = recipient(db, campaign)
    rows = {
        status: SendLedger(
            enrollment_id=enrollment.id,
            campaign_id=campaign.id,
            mailbox_id=campaign.mailbox_id,
            step_position=position,
            tag=uuid.uuid4().hex,
            status=status,
        )
        for position, status in enumerate(LedgerStatus, start=1)
    }
    db.add_all(rows.values())
    db.flush()
    db.execute(
        update(SendLedger)
        .where(SendLedger.enrollment_id == enrollment.id, lifecycle.ledger_may(event))
        .values(status=lifecycle.ledger_target(event))
        .execution_options(synchronize_session=False)
    )
    db.expire_all()
    for status, row in rows.items():
        after = db.get(SendLedger, row.id)
        assert after is not None
        assert after.status is LEDGER_LEGAL[event].get(status, status)
