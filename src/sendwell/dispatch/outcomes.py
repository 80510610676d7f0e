"""What became of a claim, recorded: sent, refused, back in line, given up (one entry,
`Outcomes.record`), or settled through Sent; and the signed unsubscribe links."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker

from sendwell.campaigns import repository as campaign_repo
from sendwell.campaigns import service as campaigns
from sendwell.campaigns import templates, threads
from sendwell.campaigns.validation import recipient_values, sender_fields
from sendwell.db import session_scope
from sendwell.dispatch import bounce_guard, pacing
from sendwell.dispatch import repository as repo
from sendwell.dispatch.flight import each
from sendwell.dispatch.policy import Claim, DispatchPolicy
from sendwell.kit import events
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import SendwellError
from sendwell.kit.logging import get_logger
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tokens import with_credential
from sendwell.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Enrollment,
    LedgerStatus,
    Mailbox,
    PauseReason,
    SendLedger,
    Suppression,
    SuppressionReason,
    lifecycle,
)
from sendwell.models.lifecycle import EnrollmentEvent, LedgerEvent
from sendwell.providers.base import SentMessage, SentProbe
from sendwell.providers.credentials import Credential
from sendwell.providers.errors import (
    AuthRevoked,
    InsufficientScope,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    RecipientRejected,
    SendingBlocked,
    Transient,
)

log = get_logger(__name__)
SETTLE_RETRY = timedelta(seconds=60)
# A copy not in Sent yet is looked for again soon at first (Graph files it seconds after its
# 202), then less and less often.
METADATA_RETRY_FIRST = timedelta(seconds=2)
# A gone worker's send not in Sent at the takeover is looked for again after 1 s, then 2, 4,
# ... until found or its lease ends: only finding it settles it early.
RELOOK_FIRST = timedelta(seconds=1)


class UnsubscribeLinks:
    """Signed one-click unsubscribe links (RFC 8058) that expire after `lifetime`.

    Links made before links expired (salt "unsubscribe", no time stamp) are still honoured:
    a recipient of older mail must always be able to leave.
    """

    def __init__(
        self, base_url: str, secret_key: str, lifetime: timedelta = timedelta(days=400)
    ) -> None:
        self.base_url = base_url
        self.lifetime = lifetime
        self._signer = URLSafeTimedSerializer(secret_key, salt="unsubscribe-expiring")
        self._untimed = URLSafeSerializer(secret_key, salt="unsubscribe")

    def url(self, workspace_id: int, email: str) -> str:
        return f"{self.base_url}/u/{self._signer.dumps([workspace_id, email])}"

    def read(self, token: str) -> tuple[int, str] | None:
        """The link's workspace and address; None when forged or expired."""
        try:
            workspace_id, email = self._signer.loads(
                token, max_age=int(self.lifetime.total_seconds())
            )
        except SignatureExpired:
            return None
        except (BadSignature, ValueError, TypeError):
            try:
                workspace_id, email = self._untimed.loads(token)
            except (BadSignature, ValueError, TypeError):
                return None
        return int(workspace_id), str(email)

    def expired(self, token: str) -> bool:
        """True for a genuine link past its lifetime."""
        try:
            self._signer.loads(token, max_age=int(self.lifetime.total_seconds()))
        except SignatureExpired:
            return True
        except (BadSignature, ValueError, TypeError):
            return False
        return False


@dataclass(frozen=True)
class Sent:
    """The host accepted the message."""

    message: SentMessage


@dataclass(frozen=True)
class Refused:
    """The host refused it, or could not say whether it went."""

    error: ProviderError


@dataclass(frozen=True)
class NotSent:
    """Nothing went: the step goes back in line (at `until` when given); `stop` when the
    mailbox should send nothing more in this pass."""

    why: str
    until: datetime | None = None
    stop: bool = False


@dataclass(frozen=True)
class GaveUp:
    """The step can never be sent (its templates cannot be rendered for this recipient)."""

    why: str


Outcome = Sent | Refused | NotSent | GaveUp


class Outcomes:
    def __init__(
        self,
        factory: sessionmaker[Session],
        services: ProviderServices,
        policy: DispatchPolicy,
        links: UnsubscribeLinks,
        rng: random.Random,
        *,
        worker: str,
    ) -> None:
        self.factory = factory
        self.services = services
        self.policy = policy
        self.links = links
        self.rng = rng
        self.worker = worker
        # Gone workers' sends not found in Sent yet: when to look again, and the wait before.
        self._relooks: dict[int, tuple[datetime, timedelta]] = {}

    def record(self, claim: Claim, outcome: Outcome) -> bool:
        """Record what became of a claim, each in its own commit; returns whether the
        mailbox may go on sending in this pass."""
        match outcome:
            case Sent(message):
                self.record_sent(claim, message)
                return True
            case Refused(error):
                self.failed(claim, error)
                return isinstance(error, RecipientRejected)
            case NotSent(why, until, stop):
                self.release(claim, why, until=until)
                return not stop
            case GaveUp(why):
                self.fail_recipient(claim, why)
                return True
        assert_never(outcome)

    def record_all(self, outcomes: list[tuple[Claim, Outcome]]) -> None:
        """Record several claims' outcomes (of different mailboxes): the sends in one commit,
        the rest each in its own, as `record` does."""
        sent = [(claim, o.message) for claim, o in outcomes if isinstance(o, Sent)]
        if len(sent) > 1 and self._record_sent_together(sent):
            outcomes = [(claim, o) for claim, o in outcomes if not isinstance(o, Sent)]
        # One that cannot be recorded is settled later (its claim stays gated).
        each(outcomes, lambda pair: self.record(*pair), "record_failed")

    def _record_sent_together(self, sent: list[tuple[Claim, SentMessage]]) -> bool:
        """One commit for several sends; False (nothing saved) if it failed, and they are
        then recorded one at a time: one bad row does not leave the others unrecorded."""
        try:
            with session_scope(self.factory) as db:
                for claim, message in sent:
                    self.record_sent_in(db, claim, message)
        except Exception:
            log.exception("record_together_failed", ledger_ids=[c.ledger_id for c, _ in sent])
            return False
        return True

    def release(self, claim: Claim, why: str, *, until: datetime | None = None) -> None:
        """Nothing was sent: the step goes back to its place in line (or waits `until`)."""
        with session_scope(self.factory) as db:
            row = db.get(SendLedger, claim.ledger_id, with_for_update=True)
            if row is None or not self._still_ours(row):
                return
            self._back_in_line(db, row, until)
            row.attempts = max(0, row.attempts - 1)
        log.info("claim_released", ledger_id=claim.ledger_id, why=why)

    def _still_ours(self, row: SendLedger) -> bool:
        """Whether this worker still holds the claim: another may have put it back in line
        (this worker was judged gone, or its lease ended) and claimed it again since."""
        return row.worker == self.worker and row.status in (
            LedgerStatus.CLAIMED,
            LedgerStatus.UNKNOWN,
        )

    def _back_in_line(self, db: Session, row: SendLedger, due: datetime | None = None) -> None:
        lifecycle.ledger(row, LedgerEvent.BACK_IN_LINE)
        row.lease_until = None
        enrollment = db.get(Enrollment, row.enrollment_id)
        if enrollment is not None and enrollment.status in repo.PENDING:
            enrollment.next_due_at = due or row.not_before or utcnow()

    def failed(self, claim: Claim, error: ProviderError) -> None:
        """Classify a failed send: wait, retry, give up on the recipient, or settle later."""
        if isinstance(error, (AuthRevoked, InsufficientScope)):
            self.release(claim, f"the account needs reauthentication ({error.code})")
            return
        if isinstance(error, SendingBlocked):
            self._blocked(claim, error)
            return
        now = utcnow()
        with session_scope(self.factory) as db:
            row = db.get(SendLedger, claim.ledger_id, with_for_update=True)
            if row is None or not self._still_ours(row):
                # Settled by another worker meanwhile (this one was taken for gone, and the
                # send found in Sent): what it learnt late changes nothing.
                return
            row.error = error.message[:2000]
            if isinstance(error, OutcomeUnknown):
                # Nobody waits on it any more; look for it in Sent once the grace has passed.
                row.lease_until = now + self.policy.settle_grace
                return
            if isinstance(error, RateLimited):
                wait = timedelta(seconds=error.retry_after or pacing.RATE_LIMIT_DEFAULT.seconds)
                repo.hold_mailbox(db, row.mailbox_id, now + wait)
                self._back_in_line(db, row)
                row.attempts = max(0, row.attempts - 1)
                return
            if isinstance(error, RecipientRejected):
                lifecycle.ledger(row, LedgerEvent.GAVE_UP)
                row.lease_until = None
                self._finish_recipient(
                    db, row, EnrollmentEvent.BOUNCED, error.message, suppress=True
                )
                bounce_guard.pause_if_bouncing(db, row.campaign_id)
                return
            self._count_failure(db, row, error, now)

    def _blocked(self, claim: Claim, error: SendingBlocked) -> None:
        """The host will not send from the mailbox until its owner acts: nothing was sent, and
        every campaign sending from it pauses with the host's reason until resumed."""
        with session_scope(self.factory) as db:
            row = db.get(SendLedger, claim.ledger_id, with_for_update=True)
            if row is None:
                return
            if self._still_ours(row):
                self._back_in_line(db, row)
                row.attempts = max(0, row.attempts - 1)
                row.error = error.message[:2000]
            # What the host said holds for the mailbox, whoever holds the claim now.
            campaigns.pause_campaigns_for_mailbox(
                db, row.mailbox_id, PauseReason.MAILBOX_BLOCKED, detail=error.message
            )
        log.info("mailbox_blocked", ledger_id=claim.ledger_id, code=error.code)

    def _count_failure(
        self, db: Session, row: SendLedger, error: ProviderError, now: datetime
    ) -> None:
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            repo.hold_mailbox(db, row.mailbox_id, now + timedelta(seconds=retry_after))
        if row.attempts >= self.policy.max_attempts:
            lifecycle.ledger(row, LedgerEvent.GAVE_UP)
            row.lease_until = None
            self._finish_recipient(
                db,
                row,
                EnrollmentEvent.GAVE_UP,
                f"Gave up after {row.attempts} attempts: {error.message}",
            )
        else:
            self._back_in_line(db, row, now + pacing.retry_delay(row.attempts, self.rng))
        campaign = db.get(Campaign, row.campaign_id)
        if campaign is None:
            return
        campaign.consecutive_failures += 1
        if (
            campaign.consecutive_failures >= self.policy.failures_before_pause
            and campaign.status is CampaignStatus.ACTIVE
        ):
            db.flush()
            campaigns.pause(db, None, campaign.id, reason=PauseReason.SEND_ERRORS)

    def fail_recipient(self, claim: Claim, why: str) -> None:
        with session_scope(self.factory) as db:
            row = db.get(SendLedger, claim.ledger_id, with_for_update=True)
            if row is not None and self._still_ours(row):
                lifecycle.ledger(row, LedgerEvent.GAVE_UP)
                row.lease_until, row.error = None, why[:2000]
                self._finish_recipient(db, row, EnrollmentEvent.GAVE_UP, why)

    def _finish_recipient(
        self,
        db: Session,
        row: SendLedger,
        event: EnrollmentEvent,
        why: str,
        *,
        suppress: bool = False,
    ) -> None:
        enrollment = db.get(Enrollment, row.enrollment_id)
        if enrollment is None or not lifecycle.enrollment_allows(enrollment.status, event):
            # They finished otherwise while this send was out (replied, were removed).
            return
        lifecycle.enroll(enrollment, event)
        enrollment.status_reason = why[:2000]
        enrollment.next_due_at = None
        events.publish(db, events.RecipientFinished(enrollment=enrollment))
        campaign = db.get(Campaign, row.campaign_id)
        if suppress and campaign is not None:
            add_suppression(
                db, campaign.workspace_id, enrollment.email, SuppressionReason.BOUNCED, why
            )
        db.flush()
        complete_if_finished(db, row.campaign_id)

    def record_sent(self, claim: Claim, sent: SentMessage) -> None:
        """Sent: the ledger row, the recipient's next step and the campaign, in one commit."""
        with session_scope(self.factory) as db:
            self.record_sent_in(db, claim, sent)

    @staticmethod
    def record_sent_in(db: Session, claim: Claim, sent: SentMessage) -> None:
        """Record a send in the caller's unit of work (nothing if it was recorded already)."""
        found = repo.send_to_record(db, claim.ledger_id)
        if found is None or found.row.status is not LedgerStatus.UNKNOWN:
            # Settled meanwhile by another worker, which had taken this one for gone.
            log.info("late_answer_ignored", ledger_id=claim.ledger_id)
            return
        mark_sent(db, found.row, sent, steps=found.steps)
        if found.campaign_has_bounces:
            # The send may complete a window that already holds enough bounces.
            bounce_guard.pause_if_bouncing(db, found.row.campaign_id)

    def _after_delivery(self, db: Session, campaign_id: int) -> None:
        bounce_guard.after_delivery(db, campaign_id)

    def release_expired_claims(self, gone: set[str]) -> None:
        """Claims a stopped worker never handed to a provider go back in line: their lease
        ended, or their worker is `gone` (liveness.py)."""
        with session_scope(self.factory) as db:
            for row in repo.expired_claims(db, utcnow(), gone):
                log.info("claim_expired", ledger_id=row.id, worker=row.worker)
                self._back_in_line(db, row)
                # Never handed to the host: not an attempt (a worker's death must not bring
                # a recipient nearer to being given up, nor lengthen its retry wait).
                row.attempts = max(0, row.attempts - 1)

    def _find_sent(self, ledger_id: int) -> SentMessage | None:
        """This send's copy in its mailbox's Sent folder, if it is there.

        Every message sent since the send was claimed is looked at, however busy the mailbox
        was meanwhile. A host that cannot be searched by our tag may offer several copies to
        the same recipient with the same subject: copies no other send has taken are matched
        to such sends oldest to oldest, sends known to have gone first; a send whose outcome
        is unknown takes a copy only when one is left over (never twice over never skipped).
        """
        with session_scope(self.factory) as db:
            row = db.get(SendLedger, ledger_id)
            enrollment = db.get(Enrollment, row.enrollment_id) if row else None
            mailbox = db.get(Mailbox, row.mailbox_id) if row else None
            if row is None or enrollment is None or mailbox is None:
                return None
            probe = SentProbe(
                tag=row.tag,
                recipient=enrollment.email,
                subject=row.subject or _subject_as_rendered(db, row, enrollment, mailbox),
                since=row.claimed_at or row.sent_at or utcnow(),
            )
            mailbox_id, provider_name = mailbox.id, mailbox.provider
        provider = self.services.mail_host(provider_name)

        def look(credential: Credential) -> list[SentMessage]:
            return provider.find_sent(credential, probe)

        copies = with_credential(self.factory, self.services, mailbox_id, look)
        if not copies:
            return None
        with session_scope(self.factory) as db:
            taken = repo.copies_taken(
                db, mailbox_id, [c.provider_message_id for c in copies], besides=ledger_id
            )
            oldest_first = [c for c in reversed(copies) if c.provider_message_id not in taken]
            if provider.sent_copies_by_tag:
                return oldest_first[0] if oldest_first else None
            row = db.get(SendLedger, ledger_id)
            ahead = repo.sends_ahead_for_copies(db, row, probe.recipient) if row else 0
        return oldest_first[ahead] if len(oldest_first) > ahead else None

    def settle_found_of(self, gone: set[str]) -> None:
        """The sends gone workers had handed to a host, looked for in Sent at once (before
        their lease ends): one found there went, and is recorded now, so the recipient's next
        step need not wait for the lease. One not found keeps its lease (the host may still
        be finishing it, or its worker, cut off, may still be waiting for the answer) and is
        looked for again now and then until it is found or its lease ends (`look_again`);
        then `settle_unknown` settles it."""
        with session_scope(self.factory) as db:
            pending = repo.handed_over_by(db, gone, utcnow())
        self._look_for(pending)

    def look_again(self) -> None:
        """Look again in Sent for gone workers' sends not found there yet, whose turn came
        (a host may file its copy a little after answering, as Graph does)."""
        now = utcnow()
        due = [ledger_id for ledger_id, (at, _) in self._relooks.items() if at <= now]
        if not due:
            return
        with session_scope(self.factory) as db:
            waiting = set(repo.still_handed_over(db, due, now))
        for ledger_id in set(due) - waiting:
            del self._relooks[ledger_id]  # settled, or its lease ended: settle_unknown's now
        self._look_for(sorted(waiting))

    def next_look_again(self) -> datetime | None:
        """When `look_again` has something to look for next."""
        return min((at for at, _ in self._relooks.values()), default=None)

    def relook_due(self) -> bool:
        """Whether `look_again` has something to look for now."""
        soonest = self.next_look_again()
        return soonest is not None and soonest <= utcnow()

    def _look_for(self, ledger_ids: list[int]) -> None:
        """Each send looked for in Sent, recorded if found; its next look is set first, so
        one that could not be looked for (the host or the database failing) is looked for
        again, and the others are still looked for."""
        for ledger_id in ledger_ids:
            _, after = self._relooks.get(ledger_id, (None, RELOOK_FIRST / 2))
            self._relooks[ledger_id] = (utcnow() + 2 * after, 2 * after)
            try:
                found = self._find_sent(ledger_id)
                if found is None:
                    continue
                with session_scope(self.factory) as db:
                    self._settle_as_sent(db, ledger_id, found)
            except Exception as error:
                log.info("settle_deferred", ledger_id=ledger_id, reason=type(error).__name__)
                continue
            del self._relooks[ledger_id]

    def _settle_as_sent(self, db: Session, ledger_id: int, found: SentMessage) -> None:
        """Record a send found in Sent, unless it was settled meanwhile."""
        # Locked: another worker may be settling the same row.
        row = db.get(SendLedger, ledger_id, with_for_update=True)
        if row is None or row.status is not LedgerStatus.UNKNOWN:
            return
        log.info("settled_as_sent", ledger_id=ledger_id)
        mark_sent(db, row, found)
        self._after_delivery(db, row.campaign_id)

    def settle_unknown(self) -> None:
        """Look for every unsettled send in Sent: found means sent, absent means not sent."""
        with session_scope(self.factory) as db:
            pending = [r.id for r in repo.unsettled(db, utcnow())]
        for ledger_id in pending:
            try:
                found = self._find_sent(ledger_id)
            except (ProviderError, SendwellError) as error:
                with session_scope(self.factory) as db:
                    row = db.get(SendLedger, ledger_id)
                    if row is not None:
                        row.lease_until = utcnow() + SETTLE_RETRY
                log.info("settle_deferred", ledger_id=ledger_id, reason=type(error).__name__)
                continue
            with session_scope(self.factory) as db:
                if found is not None:
                    self._settle_as_sent(db, ledger_id, found)
                    continue
                # Locked: another worker may be settling the same row.
                row = db.get(SendLedger, ledger_id, with_for_update=True)
                if row is None or row.status is not LedgerStatus.UNKNOWN:
                    continue
                if utcnow() < (
                    lag_ends := (row.claimed_at or utcnow()) + self._copy_lag(row.mailbox_id)
                ):
                    # The host may still file it (Graph's copy comes after its answer):
                    # absence proves nothing yet. Look again once the copy's lag has passed.
                    row.lease_until = min(lag_ends, utcnow() + SETTLE_RETRY)
                    log.info("settle_waits_for_copy", ledger_id=ledger_id)
                else:
                    log.info("settled_as_not_sent", ledger_id=ledger_id)
                    # An attempt that never reached the host still counts toward giving up.
                    self._count_failure(
                        db,
                        row,
                        Transient(
                            "The host did not answer and the message is not in Sent.",
                            code="not_delivered",
                        ),
                        utcnow(),
                    )

    def _copy_lag(self, mailbox_id: int) -> timedelta:
        with session_scope(self.factory) as db:
            mailbox = db.get(Mailbox, mailbox_id)
            name = mailbox.provider if mailbox else ""
        return self.services.mail_host(name).sent_copy_lag if name else timedelta(0)

    def fill_missing_metadata(self) -> None:
        """Learn the real Message-ID of sends the host accepted without saying where."""
        now = utcnow()
        with session_scope(self.factory) as db:
            rows = [r.id for r in repo.missing_metadata(db, now)]
        for ledger_id in rows:
            try:
                found = self._find_sent(ledger_id)
            except (ProviderError, SendwellError):
                found = None
            with session_scope(self.factory) as db:
                row = db.get(SendLedger, ledger_id, with_for_update=True)
                if row is None or row.status is not LedgerStatus.SENT or row.message_id_header:
                    continue
                if found is None or not found.message_id_header:
                    row.lease_until = utcnow() + metadata_retry(row.sent_at)
                    continue
                row.provider_message_id = found.provider_message_id
                row.thread_id, row.message_id_header = found.thread_id, found.message_id_header
                enrollment = db.get(Enrollment, row.enrollment_id)
                if enrollment is not None and enrollment.steps_sent == row.step_position:
                    enrollment.last_message_id = found.message_id_header
                    enrollment.thread_id = enrollment.thread_id or found.thread_id


def _subject_as_rendered(
    db: Session, row: SendLedger, enrollment: Enrollment, mailbox: Mailbox
) -> str:
    """The subject a send went with, for a row claimed before subjects were kept."""
    steps = repo.campaign_steps(db, row.campaign_id)
    campaign = db.get(Campaign, row.campaign_id)
    if campaign is None or not 0 < row.step_position <= len(steps):
        return ""
    fields = templates.merge_fields(recipient_values(enrollment), sender_fields(campaign, mailbox))
    try:
        return threads.render_step(steps, row.step_position, fields).subject
    except templates.TemplateProblem:
        return ""


def metadata_retry(sent_at: datetime | None) -> timedelta:
    """How long until a send's copy is looked for again: half its age, within bounds."""
    age = utcnow() - sent_at if sent_at is not None else SETTLE_RETRY
    return min(SETTLE_RETRY, max(METADATA_RETRY_FIRST, age / 2))


def mark_sent(
    db: Session,
    row: SendLedger,
    sent: SentMessage,
    *,
    steps: dict[int, CampaignStep] | None = None,
) -> None:
    """Record a send and schedule the recipient's next step from when this one really went.

    `steps`: the campaign's steps at the send's position and the next, when already read
    in this unit of work.
    """
    now = utcnow()
    lifecycle.ledger(row, LedgerEvent.SENT)
    row.lease_until, row.error = None, ""
    row.sent_at = now
    row.provider_message_id = sent.provider_message_id
    row.thread_id, row.message_id_header = sent.thread_id, sent.message_id_header
    enrollment = db.get(Enrollment, row.enrollment_id)
    if enrollment is None:
        return
    if steps is None:
        steps = repo.steps_at(db, row.campaign_id, (row.step_position, row.step_position + 1))
    campaign = db.get(Campaign, row.campaign_id)
    if campaign is not None and campaign.consecutive_failures:
        repo.reset_consecutive_failures(db, row.campaign_id)
    step = steps.get(row.step_position)
    enrollment.steps_sent = max(enrollment.steps_sent, row.step_position)
    enrollment.last_sent_at = now
    enrollment.last_message_id = sent.message_id_header
    if row.step_position == 1 or (step is not None and step.new_thread) or not enrollment.thread_id:
        enrollment.thread_id = sent.thread_id
    if enrollment.status not in repo.PENDING:
        return
    following = steps.get(row.step_position + 1)
    if following is not None:
        lifecycle.enroll(enrollment, EnrollmentEvent.STEP_SENT)
        enrollment.next_due_at = now + timedelta(minutes=following.delay_minutes)
        return
    lifecycle.enroll(enrollment, EnrollmentEvent.LAST_STEP_SENT)
    enrollment.next_due_at = None
    db.flush()
    complete_if_finished(db, row.campaign_id)


def complete_if_finished(db: Session, campaign_id: int) -> None:
    campaign = db.get(Campaign, campaign_id)
    if (
        campaign is not None
        and campaign.status is CampaignStatus.ACTIVE
        and not campaign_repo.has_pending(db, campaign_id)
    ):
        campaigns.complete(db, campaign_id)


def add_suppression(
    db: Session, workspace_id: int, email: str, reason: SuppressionReason, note: str = ""
) -> None:
    if repo.suppression_of(db, workspace_id, email) is None:
        db.add(Suppression(workspace_id=workspace_id, email=email, reason=reason, note=note[:2000]))


def not_delivered(db: Session, row: SendLedger, due: datetime) -> bool:
    """A send the host accepted and later bounced without delivering (its own sending limit):
    the step goes back in line for `due`, under a new tag, as if it had never been sent, and
    a campaign that had completed is active again.

    Only while it is the recipient's latest step and the campaign is not archived; returns
    whether it was put back.
    """
    # Locked and read afresh: a worker may be recording or claiming for this recipient.
    db.refresh(row, with_for_update=True)
    enrollment = db.get(Enrollment, row.enrollment_id, with_for_update=True, populate_existing=True)
    campaign = db.get(Campaign, row.campaign_id)
    if (
        row.status is not LedgerStatus.SENT
        or enrollment is None
        or campaign is None
        or enrollment.steps_sent != row.step_position
        or not lifecycle.enrollment_allows(enrollment.status, EnrollmentEvent.STEP_UNDONE)
        or campaign.status
        not in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED, CampaignStatus.COMPLETED)
    ):
        return False
    if campaign.status is CampaignStatus.COMPLETED:
        campaigns.reopen(
            db,
            campaign.id,
            reason=f"The mail host bounced the message to {enrollment.email} for its own "
            "sending limit; it goes again later.",
        )
    previous = repo.ledger_row_at_step(db, enrollment.id, row.step_position - 1)
    lifecycle.ledger(row, LedgerEvent.UNDONE)
    row.lease_until, row.sent_at = None, None
    row.tag = uuid.uuid4().hex
    row.provider_message_id = row.thread_id = row.message_id_header = ""
    row.error = "The mail host bounced it for its own sending limit; it goes again later."
    enrollment.steps_sent = row.step_position - 1
    lifecycle.enroll(
        enrollment,
        EnrollmentEvent.STEP_UNDONE if previous is not None else EnrollmentEvent.FIRST_STEP_UNDONE,
    )
    enrollment.next_due_at = due
    enrollment.last_message_id = previous.message_id_header if previous else ""
    enrollment.last_sent_at = previous.sent_at if previous else None
    if previous is None:
        enrollment.thread_id = ""
    return True
