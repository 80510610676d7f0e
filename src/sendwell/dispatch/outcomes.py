"""What happens to a claim: prepared, released, failed, sent, or settled through Sent."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from sendwell.campaigns import repository as campaign_repo
from sendwell.campaigns import service as campaigns
from sendwell.campaigns import templates
from sendwell.campaigns.validation import recipient_values, sender_fields
from sendwell.db import session_scope
from sendwell.dispatch import pacing
from sendwell.dispatch import repository as repo
from sendwell.dispatch.mime import Envelope, build_message
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import SendwellError
from sendwell.kit.logging import get_logger
from sendwell.mailboxes.connections import Connections
from sendwell.mailboxes.tokens import with_access_token
from sendwell.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    PauseReason,
    SendLedger,
    Suppression,
    SuppressionReason,
)
from sendwell.providers.base import (
    AuthRevoked,
    InsufficientScope,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    RecipientRejected,
    SentMessage,
    Transient,
)
from sendwell.webhooks import service as webhooks

if TYPE_CHECKING:
    from sendwell.dispatch.engine import Claim, DispatchPolicy

log = get_logger(__name__)
SETTLE_RETRY = timedelta(seconds=60)


class CannotRender(SendwellError):
    code = "cannot_render"


@dataclass(frozen=True)
class Prepared:
    provider: str
    mime: bytes
    tag: str
    thread_id: str | None


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


class Outcomes:
    def __init__(
        self,
        factory: sessionmaker[Session],
        conn: Connections,
        policy: DispatchPolicy,
        links: UnsubscribeLinks,
        rng: random.Random,
    ) -> None:
        self.factory = factory
        self.conn = conn
        self.policy = policy
        self.links = links
        self.rng = rng

    def compose(
        self,
        row: SendLedger,
        enrollment: Enrollment,
        campaign: Campaign,
        step: CampaignStep,
        mailbox: Mailbox,
        earlier: list[SendLedger],
    ) -> Prepared:
        """The message for a claimed step; `earlier` are the recipient's sent steps before it."""
        fields = templates.merge_fields(
            recipient_values(enrollment), sender_fields(campaign, mailbox)
        )
        try:
            rendered = templates.render_step(
                step.subject, step.body, step.body_html, fields, f"Step {step.position}"
            )
        except templates.TemplateProblem as error:
            raise CannotRender(error.message) from None
        reply_to = earlier[-1] if earlier and not step.new_thread else None
        envelope = Envelope(
            sender_email=mailbox.email,
            sender_name=mailbox.display_name,
            recipient_email=enrollment.email,
            recipient_name=" ".join(p for p in (enrollment.first_name, enrollment.last_name) if p),
            tag=row.tag,
            in_reply_to=reply_to.message_id_header if reply_to else "",
            references=tuple(r.message_id_header for r in earlier[:-1] if r.message_id_header)
            if reply_to
            else (),
            unsubscribe_url=self.links.url(campaign.workspace_id, enrollment.email),
            unsubscribe_footer=campaign.unsubscribe_footer,
        )
        return Prepared(
            mailbox.provider,
            build_message(rendered, envelope),
            row.tag,
            reply_to.thread_id if reply_to else None,
        )

    def release(self, claim: Claim, why: str) -> None:
        """Nothing was sent: the step goes back to its place in line."""
        with session_scope(self.factory) as db:
            row = db.get(SendLedger, claim.ledger_id)
            if row is None:
                return
            self._back_in_line(db, row)
            row.attempts = max(0, row.attempts - 1)
        log.info("claim_released", ledger_id=claim.ledger_id, why=why)

    def _back_in_line(self, db: Session, row: SendLedger, due: datetime | None = None) -> None:
        row.status = LedgerStatus.RETRY
        row.lease_until = None
        enrollment = db.get(Enrollment, row.enrollment_id)
        if enrollment is not None and enrollment.status in repo.PENDING:
            enrollment.next_due_at = due or row.not_before or utcnow()

    def failed(self, claim: Claim, error: ProviderError) -> None:
        """Classify a failed send: wait, retry, give up on the recipient, or settle later."""
        if isinstance(error, (AuthRevoked, InsufficientScope)):
            self.release(claim, f"the account needs reauthentication ({error.code})")
            return
        now = utcnow()
        with session_scope(self.factory) as db:
            row = db.get(SendLedger, claim.ledger_id)
            if row is None:
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
                row.status, row.lease_until = LedgerStatus.FAILED, None
                self._finish_recipient(
                    db, row, EnrollmentStatus.BOUNCED, error.message, suppress=True
                )
                return
            self._count_failure(db, row, error, now)

    def _count_failure(
        self, db: Session, row: SendLedger, error: ProviderError, now: datetime
    ) -> None:
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            repo.hold_mailbox(db, row.mailbox_id, now + timedelta(seconds=retry_after))
        if row.attempts >= self.policy.max_attempts:
            row.status, row.lease_until = LedgerStatus.FAILED, None
            self._finish_recipient(
                db,
                row,
                EnrollmentStatus.FAILED,
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
            row = db.get(SendLedger, claim.ledger_id)
            if row is not None:
                row.status, row.lease_until, row.error = LedgerStatus.FAILED, None, why[:2000]
                self._finish_recipient(db, row, EnrollmentStatus.FAILED, why)

    def _finish_recipient(
        self,
        db: Session,
        row: SendLedger,
        status: EnrollmentStatus,
        why: str,
        *,
        suppress: bool = False,
    ) -> None:
        enrollment = db.get(Enrollment, row.enrollment_id)
        if enrollment is None:
            return
        enrollment.status = status
        enrollment.status_reason = why[:2000]
        enrollment.next_due_at = None
        webhooks.recipient_finished(db, enrollment)
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
            row = db.get(SendLedger, claim.ledger_id)
            if row is not None:
                mark_sent(db, row, sent)

    def release_expired_claims(self) -> None:
        """Claims a stopped worker never handed to a provider go back in line."""
        with session_scope(self.factory) as db:
            for row in repo.expired_claims(db, utcnow()):
                log.info("claim_expired", ledger_id=row.id, worker=row.worker)
                self._back_in_line(db, row)

    def _find_sent(self, mailbox_id: int, tag: str, since: datetime | None) -> SentMessage | None:
        """Our tagged message in the mailbox's Sent folder, if it is there: every message
        since the send was claimed is looked at, however busy the mailbox was meanwhile."""
        with session_scope(self.factory) as db:
            mailbox = db.get(Mailbox, mailbox_id)
            provider_name = mailbox.provider if mailbox else ""
        provider = self.conn.provider(provider_name)

        def look(token: str) -> SentMessage | None:
            return provider.find_sent(token, tag, since)

        return with_access_token(self.factory, self.conn, mailbox_id, look)

    def settle_unknown(self) -> None:
        """Look for every unsettled send in Sent: found means sent, absent means not sent."""
        with session_scope(self.factory) as db:
            pending = [
                (r.id, r.mailbox_id, r.tag, r.claimed_at) for r in repo.unsettled(db, utcnow())
            ]
        for ledger_id, mailbox_id, tag, claimed_at in pending:
            try:
                found = self._find_sent(mailbox_id, tag, claimed_at)
            except (ProviderError, SendwellError) as error:
                with session_scope(self.factory) as db:
                    row = db.get(SendLedger, ledger_id)
                    if row is not None:
                        row.lease_until = utcnow() + SETTLE_RETRY
                log.info("settle_deferred", ledger_id=ledger_id, reason=type(error).__name__)
                continue
            with session_scope(self.factory) as db:
                row = db.get(SendLedger, ledger_id)
                if row is None or row.status is not LedgerStatus.UNKNOWN:
                    continue
                if found is not None:
                    log.info("settled_as_sent", ledger_id=ledger_id)
                    mark_sent(db, row, found)
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

    def fill_missing_metadata(self) -> None:
        """Learn the real Message-ID of sends the host accepted without saying where."""
        now = utcnow()
        with session_scope(self.factory) as db:
            rows = [
                (r.id, r.mailbox_id, r.tag, r.claimed_at) for r in repo.missing_metadata(db, now)
            ]
        for ledger_id, mailbox_id, tag, claimed_at in rows:
            try:
                found = self._find_sent(mailbox_id, tag, claimed_at)
            except (ProviderError, SendwellError):
                found = None
            with session_scope(self.factory) as db:
                row = db.get(SendLedger, ledger_id)
                if row is None:
                    continue
                if found is None or not found.message_id_header:
                    row.lease_until = utcnow() + SETTLE_RETRY
                    continue
                row.provider_message_id = found.provider_message_id
                row.thread_id, row.message_id_header = found.thread_id, found.message_id_header
                enrollment = db.get(Enrollment, row.enrollment_id)
                if enrollment is not None and enrollment.steps_sent == row.step_position:
                    enrollment.last_message_id = found.message_id_header
                    enrollment.thread_id = enrollment.thread_id or found.thread_id


def mark_sent(db: Session, row: SendLedger, sent: SentMessage) -> None:
    """Record a send and schedule the recipient's next step from when this one really went."""
    now = utcnow()
    row.status, row.lease_until, row.error = LedgerStatus.SENT, None, ""
    row.sent_at = now
    row.provider_message_id = sent.provider_message_id
    row.thread_id, row.message_id_header = sent.thread_id, sent.message_id_header
    enrollment = db.get(Enrollment, row.enrollment_id)
    if enrollment is None:
        return
    steps = {
        step.position: step
        for step in db.scalars(
            select(CampaignStep).where(
                CampaignStep.campaign_id == row.campaign_id,
                CampaignStep.position.in_((row.step_position, row.step_position + 1)),
            )
        )
    }
    db.execute(
        update(Campaign)
        .where(Campaign.id == row.campaign_id, Campaign.consecutive_failures != 0)
        .values(consecutive_failures=0)
        .execution_options(synchronize_session=False)
    )
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
        enrollment.status = EnrollmentStatus.IN_PROGRESS
        enrollment.next_due_at = now + timedelta(minutes=following.delay_minutes)
        return
    enrollment.status, enrollment.next_due_at = EnrollmentStatus.COMPLETED, None
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
    exists = db.scalar(
        select(Suppression).where(
            Suppression.workspace_id == workspace_id, Suppression.email == email
        )
    )
    if exists is None:
        db.add(Suppression(workspace_id=workspace_id, email=email, reason=reason, note=note[:2000]))
