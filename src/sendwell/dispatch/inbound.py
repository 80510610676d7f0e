"""Replies and bounces: read each mailbox's new messages and stop the right sequences."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from sendwell.db import session_scope
from sendwell.dispatch import bounce_guard, holds, outcomes
from sendwell.dispatch import repository as repo
from sendwell.dispatch.flight import HostCalls, each
from sendwell.dispatch.outcomes import add_suppression, complete_if_finished
from sendwell.kit import events
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import SendwellError
from sendwell.kit.logging import get_logger
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tokens import HeldCredential, HeldCredentials
from sendwell.models import (
    Campaign,
    Enrollment,
    EnrollmentStatus,
    Reply,
    ReplyKind,
    SendLedger,
    SuppressionReason,
    lifecycle,
)
from sendwell.models.lifecycle import EnrollmentEvent
from sendwell.providers.base import InboundMessage, InboundPage, ProviderName
from sendwell.providers.errors import ProviderError
from sendwell.replies import service as replies

log = get_logger(__name__)
AUTO_PRECEDENCE = frozenset({"auto_reply", "bulk", "junk", "list"})
# Headers whose presence marks an automatic reply (docs/providers.md, "Automatic replies"):
# responders' own (Gmail's vacation responder sets X-Autoreply) and Exchange's, which it puts
# on every message an inbox rule or the out-of-office assistant sends.
AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-ms-exchange-inbox-rules-loop")
EXCHANGE_RULES_AGENT = "mailbox rules agent"
# Auto-Submitted's keyword, without RFC 3834 parameters or comments: "auto-replied (vacation)".
KEYWORD = re.compile(r"[^\s;(]*")
DAEMONS = ("mailer-daemon@", "postmaster@", "mail delivery subsystem", "microsoftexchange")
# Google's own bounce service. Over the sending limit Gmail answers messages.send with 200 and
# bounces the message later, naming no failed recipient (a recipient's bounce names it in
# X-Failed-Recipients): that message was never delivered, so it is sent again later.
GOOGLE_DAEMONS = ("mailer-daemon@googlemail.com", "mailer-daemon@google.com")
SENDING_LIMIT_HOLD = timedelta(hours=1)
# How long reading a mailbox waits for the ids of its latest sends.
IDS_GRACE = timedelta(minutes=2)
# Inboxes read per pass of the engine. Thousands of sending mailboxes, each read every
# minute, fall due a few dozen a second; reading all that are due before any send made every
# paced send of the pass wait behind a round of reads (seconds, with the mailboxes linked
# together). A few per pass, the longest due first, and the pass after comes at once.
READ_BATCH = 10
ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def kind_of(message: InboundMessage, *, host: ProviderName | None = None) -> str:
    """bounce, delay, sending_limit, auto_reply or reply, from the headers a mail system
    sets; `host` is the mailbox's (a Google sending-limit bounce only counts on Gmail)."""
    headers = {k.lower(): v for k, v in message.headers.items()}
    # Parameters may be quoted (report-type="delivery-status"), as RFC 2045 allows.
    content_type = headers.get("content-type", "").lower().replace('"', "")
    sender = message.from_address.lower()
    if (
        "report-type=delivery-status" in content_type
        or "x-failed-recipients" in headers
        or any(daemon in sender for daemon in DAEMONS)
    ):
        subject = message.subject.lower()
        if "(delay)" in subject or "delayed" in subject:
            return "delay"  # the host is still trying: nothing has failed yet
        if (
            host is ProviderName.GOOGLE
            and "(failure)" in subject
            and "x-failed-recipients" not in headers
            and any(d in sender for d in GOOGLE_DAEMONS)
        ):
            return "sending_limit"
        return "bounce"
    return "auto_reply" if is_auto_reply(headers) else "reply"


def is_auto_reply(headers: dict[str, str]) -> bool:
    """An automatic answer (out of office, vacation, an inbox rule), from lower-cased headers.

    X-Auto-Response-Suppress is not a sign: it asks others not to answer automatically, and
    people's own replies carry it too.
    """
    keyword = KEYWORD.match(headers.get("auto-submitted", "").strip().lower())
    if keyword is not None and keyword.group(0) not in ("", "no"):
        return True
    if any(headers.get(name, "").strip().lower() not in ("", "no") for name in AUTO_HEADERS):
        return True
    source = headers.get("x-ms-exchange-generated-message-source", "").strip().lower()
    return (
        source == EXCHANGE_RULES_AGENT
        or headers.get("precedence", "").strip().lower() in AUTO_PRECEDENCE
    )


def next_interval(
    interval: timedelta, quiet: timedelta, previous: timedelta | None, *, busy: bool
) -> timedelta:
    """How long until an inbox just read is read again: `interval` after a read that found
    messages or that follows a send of the mailbox (an answer or a bounce may be on its way),
    or when there is no `previous` interval to go on; after a quiet read, twice the previous
    interval, at least `interval` and at most `quiet` (when longer than `interval`)."""
    if busy or previous is None:
        return interval
    return min(max(quiet, interval), max(interval, previous * 2))


class InboundReader:
    """Reads inboxes on each one's own schedule (`Mailbox.inbound_read_due_at`): every
    `interval` while it receives messages or its mailbox sends (a claim brings the next read
    forward to `interval` after it: `repository.take_send_slot`), and less often while it is
    quiet, down to once per `quiet_interval` (never less often than `interval`: a shorter
    quiet interval counts as `interval`). Most mailboxes of a large fleet are quiet most of
    the time (a mailbox sends a few dozen emails a day), and reading each of thousands every
    minute cost more than the sends. A follow-up never goes without a read made since it fell
    due: the claim reads first (`read_before_sending`)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        services: ProviderServices,
        interval: timedelta,
        credentials: HeldCredentials,
        calls: HostCalls,
        quiet_interval: timedelta | None = None,
    ) -> None:
        self.factory = factory
        self.services = services
        self.interval = interval
        self.quiet_interval = max(quiet_interval or interval, interval)
        self.credentials = credentials
        self.calls = calls
        # Mailboxes whose read failed, and until when this worker forces no read of theirs
        # (`read_before_sending`): a host that refuses reads (a quota, an outage) is asked
        # again on the read schedule, not at every pass. A failed read is no read: the
        # follow-ups held for one keep waiting meanwhile.
        self._failed_until: dict[int, datetime] = {}

    def read_due(self) -> bool:
        """Watched mailboxes whose inbox read is due, at most READ_BATCH of them, longest
        due first; True when more may be due (the caller comes back at once)."""
        now = utcnow()
        with session_scope(self.factory) as db:
            # A reply or bounce can only be matched to a send whose ids are known: a mailbox
            # whose latest sends are not yet found in Sent (Graph files them after its 202)
            # is read a little later, but never put off for long.
            due = repo.mailboxes_to_read(db, now=now, grace_since=now - IDS_GRACE, limit=READ_BATCH)
            # Another worker walking the same list reads the ones it took; each taken read
            # is due again after the read interval should this worker die reading it.
            taken = repo.take_reads(db, [m for m, _ in due], now, now + self.interval)
        self.read_all([m for m, _ in due if m in taken], was_due=dict(due))
        return len(due) == READ_BATCH

    def next_read(
        self, db: Session, now: datetime, *, gather: timedelta = timedelta(0)
    ) -> datetime | None:
        """When the next inbox read falls due (None: no inbox is read), but not before
        `gather` from now: the reads falling due meanwhile are made together. One due already
        but left unread (its mailbox's newest sends' ids unknown, or its read failed) is due
        when it may wait no longer."""
        later, passed = repo.next_inbox_read(db, now)
        waited = passed + IDS_GRACE if passed is not None else None
        moments = [moment for moment in (later, waited) if moment is not None]
        return max(min(moments), now + gather) if moments else None

    def read_before_sending(self, mailbox_ids: list[int]) -> None:
        """Read an inbox first when a reply could change what is sent next: after a
        campaign's status changed (replies that came in while it was paused), and when a
        follow-up fell due after the last read (the engine holds such a follow-up until a
        read has happened; see `repository.due_enrollments`); and before a mailbox's first
        send, since its first read is where its inbox starts (every host lists what arrives
        after it): a bounce of a first email that came before that read would never be seen.
        For several mailboxes at once, in three statements, whatever their number; the reads
        themselves go several at a time (`read_all`)."""
        now = utcnow()
        with session_scope(self.factory) as db:
            checked = repo.inbound_checked(db, mailbox_ids)
            changed = repo.last_status_changes(db, mailbox_ids)
            unread = repo.follow_ups_due_unread(db, mailbox_ids, now)
            stale = [
                mailbox_id
                for mailbox_id, at in checked.items()
                if at is None
                or mailbox_id in unread
                or ((last := changed.get(mailbox_id)) is not None and at <= last)
            ]
            # Not while the ids of one of its sends of the last IDS_GRACE are unknown (an
            # answer to it could not be matched). Never for long: that send brought the
            # scheduled read forward to a read interval after it, and `read_due` waits at
            # most IDS_GRACE past a read's due moment.
            waiting = repo.mailboxes_awaiting_ids(db, now - IDS_GRACE) if stale else set()
        failed = {m for m, until in self._failed_until.items() if until > now}
        self.read_all([m for m in stale if m not in waiting and m not in failed])

    def read(self, mailbox_id: int) -> int:
        """Read one mailbox's new messages; returns how many sequences they stopped."""
        return self.read_all([mailbox_id])

    def read_all(
        self, mailbox_ids: list[int], *, was_due: dict[int, datetime | None] | None = None
    ) -> int:
        """Read these mailboxes' new messages: their cursors read in one statement, their
        pages fetched several at a time (`flight.HostCalls`), and the pages that arrived
        together applied in one unit of work on this thread, each mailbox's cursor saved with
        its messages (a unit that fails saves no cursor: its pages are read again, and a
        message applied twice changes nothing). `was_due`: when the reads of those taken by
        `read_due` had fallen due (their row now says when the taken read lapses). Returns
        how many sequences they stopped."""
        stopped = 0
        due = was_due or {}

        def apply(pages: list[tuple[tuple[int, ProviderName], InboundPage | None]]) -> None:
            nonlocal stopped
            try:
                stopped += self._apply_pages(pages, due)
            except Exception:
                if len(pages) == 1:
                    raise
                # One inbox's bad page must not hold the others back: one at a time.
                log.exception("inbound_pages_failed", mailbox_ids=[m for (m, _), _ in pages])
                counted: list[int] = []
                each(
                    pages,
                    lambda page: counted.append(self._apply_pages([page], due)),
                    "page_failed",
                )
                stopped += sum(counted)

        inboxes: dict[int, tuple[str | None, ProviderName]] = {}
        with session_scope(self.factory) as db:
            for mailbox_id, mailbox in repo.mailboxes_by_id(db, mailbox_ids).items():
                inboxes[mailbox_id] = (mailbox.inbound_cursor, ProviderName(mailbox.provider))
                self.credentials.note(mailbox)
        with self.calls.window(apply) as flight:
            for mailbox_id in mailbox_ids:
                if (inbox := inboxes.get(mailbox_id)) is None:
                    continue
                cursor, host = inbox
                credential = self.credentials.of(mailbox_id)
                flight.add(
                    (mailbox_id, host), partial(self._fetch, mailbox_id, host, credential, cursor)
                )
        return stopped

    def _fetch(
        self, mailbox_id: int, host: ProviderName, credential: HeldCredential, cursor: str | None
    ) -> InboundPage | None:
        """The inbox's next page from its host (None: not now), on a pool thread."""
        try:
            provider = self.services.mail_host(host)
            return credential.call(lambda held: provider.list_inbound(held, cursor))
        except (ProviderError, SendwellError) as error:
            log.info("inbound_deferred", mailbox_id=mailbox_id, reason=type(error).__name__)
            return None

    def _apply_pages(
        self,
        pages: list[tuple[tuple[int, ProviderName], InboundPage | None]],
        was_due: dict[int, datetime | None],
    ) -> int:
        """Apply these inboxes' pages in one unit of work, and set when each is read next (a
        page of None: the inbox could not be read now, and is read again after `interval`)."""
        stopped: dict[int, int] = {}
        with session_scope(self.factory) as db:
            ids = [mailbox_id for (mailbox_id, _), _ in pages]
            mailboxes = repo.mailboxes_by_id(db, ids)
            sent = repo.mailboxes_sent_since_read(db, ids)
            now = utcnow()
            for (mailbox_id, host), page in pages:
                messages = page.messages if page else []
                stopped[mailbox_id] = sum(
                    self._apply(db, mailbox_id, host, message) for message in messages
                )
                if (mailbox := mailboxes.get(mailbox_id)) is None:
                    continue
                fell_due = was_due.get(mailbox_id, mailbox.inbound_read_due_at)
                previous = (
                    fell_due - mailbox.inbound_checked_at
                    if fell_due and mailbox.inbound_checked_at
                    else None
                )
                busy = page is None or bool(messages) or mailbox_id in sent
                if page is None:
                    # Not read: what came since the last read is still unknown, so the
                    # follow-ups held for a read (`repository.due_enrollments`) keep waiting.
                    self._failed_until[mailbox_id] = now + self.interval
                else:
                    self._failed_until.pop(mailbox_id, None)
                    mailbox.inbound_cursor = page.cursor
                    mailbox.inbound_checked_at = now
                mailbox.inbound_read_due_at = now + next_interval(
                    self.interval, self.quiet_interval, previous, busy=busy
                )
        for (mailbox_id, _), page in pages:
            if page is not None:
                log.info(
                    "job",
                    name="inbound_read",
                    mailbox_id=mailbox_id,
                    messages=len(page.messages),
                    stopped=stopped[mailbox_id],
                )
        return sum(stopped.values())

    def _apply(
        self, db: Session, mailbox_id: int, host: ProviderName, message: InboundMessage
    ) -> int:
        kind = kind_of(message, host=host)
        if kind == "delay":
            return 0
        answered = [message.in_reply_to, *message.references]
        rows = repo.sent_rows_matching(
            db, mailbox_id, [m for m in answered if m], message.thread_id
        )
        if kind == "auto_reply":
            # Not a reply, but the recipient is away: hold them, stop no one.
            replies.record(
                db,
                mailbox_id=mailbox_id,
                host=host,
                message=message,
                rows=rows,
                kind=ReplyKind.AUTO_REPLY,
            )
            holds.hold_for_auto_reply(db, {row.enrollment_id for row in rows}, message)
            return 0
        if kind == "sending_limit":
            return self._not_delivered(db, mailbox_id, rows, message)
        enrollments = {row.enrollment_id for row in rows}
        if kind == "bounce":
            failed = {
                a.lower() for a in ADDRESS.findall(message.headers.get("x-failed-recipients", ""))
            }
            return sum(
                self._stop(db, enrollment_id, EnrollmentStatus.BOUNCED, message, failed)
                for enrollment_id in enrollments
            )
        recorded = replies.record(
            db, mailbox_id=mailbox_id, host=host, message=message, rows=rows, kind=ReplyKind.REPLY
        )
        return sum(
            self._stop(
                db,
                enrollment_id,
                EnrollmentStatus.REPLIED,
                message,
                set(),
                reply=recorded.get(enrollment_id),
            )
            for enrollment_id in enrollments
        )

    def _not_delivered(
        self, db: Session, mailbox_id: int, rows: list[SendLedger], message: InboundMessage
    ) -> int:
        """The host bounced sends for its own sending limit: each goes back in line, and the
        mailbox waits before sending again. Returns 0: no sequence stops."""
        answered = {message.in_reply_to, *message.references} - {""}
        until = utcnow() + SENDING_LIMIT_HOLD
        requeued = [
            row
            for row in rows
            if row.message_id_header in answered and outcomes.not_delivered(db, row, until)
        ]
        if requeued:
            repo.hold_mailbox(db, mailbox_id, until)
            log.info("sending_limit_bounce", mailbox_id=mailbox_id, requeued=len(requeued))
        return 0

    def _stop(
        self,
        db: Session,
        enrollment_id: int,
        status: EnrollmentStatus,
        message: InboundMessage,
        failed: set[str],
        *,
        reply: Reply | None = None,
    ) -> int:
        enrollment = db.get(Enrollment, enrollment_id)
        event = (
            EnrollmentEvent.REPLIED
            if status is EnrollmentStatus.REPLIED
            else EnrollmentEvent.BOUNCED
        )
        if enrollment is None or not lifecycle.enrollment_allows(enrollment.status, event):
            return 0
        if failed and enrollment.email not in failed:
            return 0
        when = _when(message.received_at)
        lifecycle.enroll(enrollment, event)
        enrollment.next_due_at = None
        enrollment.status_reason = (
            f"Replied on {when}."
            if status is EnrollmentStatus.REPLIED
            else f"Bounced on {when}: {message.subject}"[:2000]
        )
        events.publish(db, events.RecipientFinished(enrollment=enrollment, reply=reply))
        campaign = db.get(Campaign, enrollment.campaign_id)
        if status is EnrollmentStatus.BOUNCED and campaign is not None:
            add_suppression(
                db,
                campaign.workspace_id,
                enrollment.email,
                SuppressionReason.BOUNCED,
                enrollment.status_reason,
            )
        db.flush()
        complete_if_finished(db, enrollment.campaign_id)
        if status is EnrollmentStatus.BOUNCED:
            bounce_guard.pause_if_bouncing(db, enrollment.campaign_id)
        return 1


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
