"""The dispatch loop: settle what is unsettled, read replies, then claim and send due steps.

A step is claimed in the ledger (committed) before any provider call; the claim passes a gate
(campaign active, mailbox connected, recipient pending) in one statement just before the
call; its outcome is recorded with the recipient's next step in one transaction. A send whose
outcome is unknown is looked for in the Sent folder before it may be tried again.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sendwell.db import session_scope
from sendwell.dispatch import inbound, outcomes, pacing, wakeup
from sendwell.dispatch import repository as repo
from sendwell.kit.clock import utcnow
from sendwell.kit.logging import get_logger
from sendwell.mailboxes.connections import Connections
from sendwell.mailboxes.tokens import MailboxNotConnected, with_access_token
from sendwell.models import LedgerStatus, Mailbox, SendLedger
from sendwell.providers.base import ProviderError

log = get_logger(__name__)
IDLE_WAKE = timedelta(seconds=30)
SEND_BATCH = 50
# Something is due yet nothing could be sent (a claim lost to another worker, a busy
# database): look again shortly rather than spin.
STUCK_RETRY = timedelta(seconds=1)


@dataclass(frozen=True)
class DispatchPolicy:
    lease: timedelta
    inbound_interval: timedelta
    # After a send's outcome became unknown, how long before looking for it in Sent: the
    # host may still be finishing a request the client stopped waiting for.
    settle_grace: timedelta = timedelta(seconds=60)
    max_attempts: int = 5
    failures_before_pause: int = 10


@dataclass(frozen=True)
class Claim:
    ledger_id: int
    mailbox_id: int


class Dispatcher:
    """One worker's engine. Any number may run against PostgreSQL; they share all state there."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        conn: Connections,
        policy: DispatchPolicy,
        *,
        unsubscribe: outcomes.UnsubscribeLinks,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.factory = factory
        self.conn = conn
        self.policy = policy
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.wake = threading.Event()
        self.outcomes = outcomes.Outcomes(factory, conn, policy, unsubscribe, self.rng)
        self.inbound = inbound.InboundReader(factory, conn, policy.inbound_interval)

    def run_forever(self, stop: threading.Event) -> None:
        """Work until stopped, sleeping until the next due moment or until woken."""
        wakeup.register(self.wake)
        try:
            while not stop.is_set():
                try:
                    next_at = self.run_once()
                except Exception:
                    log.exception("dispatch_loop_failed", worker=self.worker_id)
                    next_at = utcnow() + timedelta(seconds=5)
                wait = max(
                    0.0, min((next_at - utcnow()).total_seconds(), IDLE_WAKE.total_seconds())
                )
                if wait:
                    self.wake.wait(wait)
                self.wake.clear()
        finally:
            wakeup.unregister(self.wake)

    def run_once(self) -> datetime:
        """One pass; returns when the next pass is worth making."""
        self.outcomes.release_expired_claims()
        self.outcomes.settle_unknown()
        self.inbound.read_due()
        self.outcomes.fill_missing_metadata()
        sent = False
        for mailbox_id in self._sending_mailboxes():
            # Keep sending while the mailbox's pacing allows (with no gap, a batch at a time),
            # so housekeeping runs between batches rather than between messages.
            for _ in range(SEND_BATCH):
                claim = self.claim(mailbox_id)
                if claim is None:
                    break
                self.deliver(claim)
                sent = True
        return utcnow() if sent else self._next_wake()

    def run_until_idle(self, limit: int = 10_000) -> int:
        """Passes until nothing is due now (tests and the CLI's one-shot mode)."""
        passes = 0
        while passes < limit:
            passes += 1
            if self.run_once() > utcnow():
                break
        return passes

    def _sending_mailboxes(self) -> list[int]:
        with session_scope(self.factory) as db:
            return [m.id for m in repo.sending_mailboxes(db, utcnow())]

    def _next_wake(self) -> datetime:
        """The soonest moment a campaign has a step due, its window is open and its pacing
        allows a send; a little later than now when something is due but could not go."""
        now = utcnow()
        with session_scope(self.factory) as db:
            candidates = [
                max(
                    due, pacing.window_opens(campaign, now), campaign.mailbox.send_not_before or due
                )
                for campaign, due in repo.earliest_due_by_campaign(db)
            ]
        soonest = min([now + IDLE_WAKE, *candidates])
        return soonest if soonest > now else now + STUCK_RETRY

    def claim(self, mailbox_id: int) -> Claim | None:
        """Claim the mailbox's earliest due step, if its pacing, cap and schedule allow one."""
        self.inbound.read_before_sending(mailbox_id)
        try:
            with session_scope(self.factory) as db:
                return self._claim(db, mailbox_id)
        except (IntegrityError, OperationalError) as error:
            # Another worker claimed the same step, or the database was busy: try later.
            log.info(
                "claim_skipped",
                worker=self.worker_id,
                mailbox_id=mailbox_id,
                reason=type(error).__name__,
            )
            return None

    def _claim(self, db: Session, mailbox_id: int) -> Claim | None:
        now = utcnow()
        mailbox = db.get(Mailbox, mailbox_id)
        if mailbox is None or not self._under_daily_cap(db, mailbox, now):
            return None
        open_campaigns = [
            c for c in repo.active_campaigns(db, mailbox_id) if pacing.window_opens(c, now) <= now
        ]
        if not open_campaigns:
            return None
        enrollment = repo.next_due_enrollment(db, [c.id for c in open_campaigns], now)
        if enrollment is None:
            return None
        gap = pacing.next_gap(mailbox.min_gap_seconds, self.rng)
        if not repo.take_send_slot(db, mailbox_id, now, now + gap):
            return None
        position = enrollment.steps_sent + 1
        row = repo.ledger_row(db, enrollment.id, position)
        if row is None:
            row = SendLedger(
                enrollment_id=enrollment.id,
                campaign_id=enrollment.campaign_id,
                mailbox_id=mailbox_id,
                step_position=position,
                tag=uuid.uuid4().hex,
                attempts=0,
            )
            db.add(row)
        elif row.status is not LedgerStatus.RETRY:
            log.warning("claim_conflict", ledger_id=row.id, status=row.status.value)
            return None
        row.status = LedgerStatus.CLAIMED
        row.worker = self.worker_id
        row.claimed_at = now
        row.lease_until = now + self.policy.lease
        row.not_before = enrollment.next_due_at
        row.attempts += 1
        enrollment.next_due_at = None
        db.flush()
        return Claim(row.id, mailbox_id)

    def _under_daily_cap(self, db: Session, mailbox: Mailbox, now: datetime) -> bool:
        count, oldest = repo.sends_since(db, mailbox.id, now - pacing.DAY)
        if count < mailbox.daily_cap:
            return True
        if oldest is not None:
            repo.hold_mailbox(db, mailbox.id, oldest + pacing.DAY)
        return False

    def deliver(self, claim: Claim) -> None:
        """Render, pass the gate, send, record: the life of one claim."""
        try:
            prepared = self.outcomes.prepare(claim)
        except outcomes.CannotRender as error:
            self.outcomes.fail_recipient(claim, error.message)
            return
        if prepared is None:
            return
        provider = self.conn.provider(prepared.provider)
        if not self._through_gate(claim):
            self.outcomes.release(claim, "the campaign or account changed before sending")
            return
        try:
            sent = with_access_token(
                self.factory,
                self.conn,
                claim.mailbox_id,
                lambda token: provider.send(
                    token, prepared.mime, tag=prepared.tag, thread_id=prepared.thread_id
                ),
            )
        except MailboxNotConnected:
            self.outcomes.release(claim, "the account is not connected")
            return
        except ProviderError as error:
            self.outcomes.failed(claim, error)
            return
        self.outcomes.record_sent(claim, sent)

    def _through_gate(self, claim: Claim) -> bool:
        """The last check before the provider is called, committed on its own."""
        for _attempt in range(3):
            try:
                with session_scope(self.factory) as db:
                    return repo.open_gate(db, claim.ledger_id, utcnow() + self.policy.lease)
            except OperationalError:
                continue
        return False


def settle_in_flight(
    factory: sessionmaker[Session], campaign_ids: list[int], *, timeout: float = 30.0
) -> bool:
    """Wait until no send of these campaigns is being handed to a provider.

    Called after a pause commits, so that when the pause returns, nothing more goes out.
    """
    deadline = utcnow() + timedelta(seconds=timeout)
    while utcnow() < deadline:
        with session_scope(factory) as db:
            if repo.in_flight(db, campaign_ids, utcnow()) == 0:
                return True
        threading.Event().wait(0.05)
    return False
