"""Replies: recorded as the inbound reader finds them, listed for their campaign's owner (and
admins), marked interested or not, each with a link to open the thread in the user's own
mailbox where the host offers one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sendwell.db import all_or_nothing
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import InvalidInput, NotFound
from sendwell.mailboxes import service as mailboxes
from sendwell.mailboxes.repository import get_mail_server
from sendwell.models import (
    Campaign,
    Enrollment,
    Interest,
    Mailbox,
    Reply,
    ReplyKind,
    SendLedger,
    User,
)
from sendwell.providers.base import InboundMessage, ProviderName
from sendwell.replies import repository as repo
from sendwell.replies.repository import Filters

LIST_LIMIT = 500
SNIPPET_LENGTH = 200
INTEREST_LABELS = {
    Interest.NONE: "Not marked",
    Interest.INTERESTED: "Interested",
    Interest.NOT_INTERESTED: "Not interested",
}
KIND_LABELS = {ReplyKind.REPLY: "Reply", ReplyKind.AUTO_REPLY: "Automatic reply"}


@dataclass(frozen=True)
class ThreadLink:
    """Where "Open thread" goes, or why there is no link."""

    url: str
    note: str = ""


@dataclass(frozen=True)
class ReplyView:
    reply: Reply
    campaign: Campaign
    enrollment: Enrollment
    mailbox: Mailbox
    link: ThreadLink

    @property
    def interest_label(self) -> str:
        return INTEREST_LABELS[self.reply.interest]

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.reply.kind]

    @property
    def who(self) -> str:
        name = f"{self.enrollment.first_name} {self.enrollment.last_name}".strip()
        return f"{name} <{self.enrollment.email}>" if name else self.enrollment.email


# Recording (called by dispatch/inbound in the unit of work that stops or holds the recipient)


def record(
    db: Session,
    *,
    mailbox_id: int,
    host: ProviderName,
    message: InboundMessage,
    rows: list[SendLedger],
    kind: ReplyKind,
) -> dict[int, Reply]:
    """A row per recipient the message answers, by recipient id; a message read again (a
    mailbox re-read, a history resync) finds its rows and adds none."""
    if not rows or not message.provider_message_id:
        return {}  # a message that answers none of our emails (most of an inbox)
    mailbox = db.get(Mailbox, mailbox_id)
    if mailbox is None:
        return {}
    known = repo.known_recipients(db, mailbox_id, message.provider_message_id)
    recorded: dict[int, Reply] = {}
    for enrollment_id, step in _answered_steps(message, rows).items():
        if enrollment_id in known:
            continue
        reply = Reply(
            campaign_id=next(r.campaign_id for r in rows if r.enrollment_id == enrollment_id),
            enrollment_id=enrollment_id,
            mailbox_id=mailbox_id,
            step_position=step,
            received_at=message.received_at,
            from_address=message.from_address[:998],
            subject=message.subject,
            snippet=_snippet(message.snippet),
            provider_message_id=message.provider_message_id[:255],
            thread_id=message.thread_id[:998],
            web_link=_host_link(host, mailbox.email, message),
            kind=kind,
        )
        # Another worker reading the same mailbox may record it first: its row stands.
        try:
            with all_or_nothing(db):
                db.add(reply)
                db.flush()
        except IntegrityError:
            continue
        recorded[enrollment_id] = reply
    return recorded


def _answered_steps(message: InboundMessage, rows: list[SendLedger]) -> dict[int, int]:
    """Each recipient's step this message answers: the latest of their emails it names
    (In-Reply-To, References), else the latest in its thread."""
    named = {message.in_reply_to, *message.references} - {""}
    steps: dict[int, int] = {}
    for enrollment_id in {row.enrollment_id for row in rows}:
        theirs = [row for row in rows if row.enrollment_id == enrollment_id]
        answered = [row for row in theirs if row.message_id_header in named] or theirs
        steps[enrollment_id] = max(row.step_position for row in answered)
    return steps


def _snippet(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SNIPPET_LENGTH else line[: SNIPPET_LENGTH - 1] + "…"


def _host_link(host: ProviderName, mailbox_email: str, message: InboundMessage) -> str:
    """The host's own link to the message, when it offers one."""
    if message.web_link:
        return message.web_link  # Graph's webLink, as Microsoft gives it
    if host is ProviderName.GOOGLE and message.thread_id:
        # Gmail documents no URL for a thread: this is the form Gmail's web client shows in
        # the address bar (https://mail.google.com/mail/u/2/#inbox/14a03b7bb0d77dd9, with
        # the API's hex thread id — KartikTalwar/gmail.js issue 109; the new Gmail still
        # opens these ids, tungnguyenson/gmail-to-trello-extension pull request 145).
        # "#all/" finds the thread whatever its labels; authuser opens the account that
        # received it when several Google accounts are signed in.
        return (
            f"https://mail.google.com/mail/?authuser={quote(mailbox_email, safe='@')}"
            f"#all/{quote(message.thread_id, safe='')}"
        )
    return ""


def thread_link(reply: Reply, mailbox: Mailbox, webmail_url: str) -> ThreadLink:
    # Only a web address is a link: whatever else a host might send is never put in an href.
    if reply.web_link and _web_address(reply.web_link):
        return ThreadLink(reply.web_link)
    if mailbox.provider == ProviderName.IMAP.value:
        if webmail_url:
            return ThreadLink(
                webmail_url,
                note="Opens your webmail: IMAP has no link to one message, look for "
                "the subject there.",
            )
        return ThreadLink(
            "",
            note=f"No link: {mailbox.email} is an IMAP account without a webmail address. "
            "Add one in its Email Settings to get a link.",
        )
    return ThreadLink("", note="No link: the mail host gave none for this message.")


# Reading and marking


def find_replies(
    db: Session, user: User, *, campaign_id: int | None, kind: str, interest: str
) -> list[ReplyView]:
    """Replies narrowed as a query asks: a kind and an interest by name, any when empty."""
    filters = Filters(
        campaign_id=campaign_id,
        kind=parse_kind(kind) if kind else None,
        interest=parse_interest(interest) if interest else None,
    )
    return list_replies(db, user, filters)


def list_replies(db: Session, user: User, filters: Filters) -> list[ReplyView]:
    rows = repo.visible_replies(db, user, filters, limit=LIST_LIMIT)
    webmail = repo.webmail_urls(db, {mailbox.id for _r, _c, _e, mailbox in rows})
    return [
        ReplyView(reply, campaign, enrollment, mailbox, _link(reply, mailbox, webmail))
        for reply, campaign, enrollment, mailbox in rows
    ]


def get_reply(db: Session, user: User, reply_id: int) -> ReplyView:
    row = repo.visible_reply(db, user, reply_id)
    if row is None:
        raise NotFound("No such reply.", code="unknown_reply")
    reply, campaign, enrollment, mailbox = row
    webmail = repo.webmail_urls(db, {mailbox.id})
    return ReplyView(reply, campaign, enrollment, mailbox, _link(reply, mailbox, webmail))


def _link(reply: Reply, mailbox: Mailbox, webmail: dict[int, str]) -> ThreadLink:
    return thread_link(reply, mailbox, webmail.get(mailbox.id, ""))


def parse_interest(raw: str) -> Interest:
    try:
        return Interest(raw.strip())
    except ValueError:
        raise InvalidInput(
            "Interest must be one of: none, interested, not_interested.", code="invalid_interest"
        ) from None


def parse_kind(raw: str) -> ReplyKind:
    try:
        return ReplyKind(raw.strip())
    except ValueError:
        raise InvalidInput("Kind must be reply or auto_reply.", code="invalid_kind") from None


def mark(db: Session, user: User, *, reply_id: int, interest: Interest) -> ReplyView:
    """Mark a reply interested, not interested, or neither again; who and when are kept."""
    view = get_reply(db, user, reply_id)
    reply = view.reply
    if reply.interest is not interest:
        reply.interest = interest
        reply.marked_by_id = None if interest is Interest.NONE else user.id
        reply.marked_at = None if interest is Interest.NONE else utcnow()
        db.flush()
    return view


def counts(db: Session, campaign_id: int) -> dict[str, int]:
    return repo.counts_by_kind(db, campaign_id)


def marked_by_name(db: Session, reply: Reply) -> str:
    if reply.marked_by_id is None:
        return ""
    marker = db.get(User, reply.marked_by_id)
    return marker.display_name if marker is not None else "a former member"


# The webmail address of an IMAP/SMTP account


def set_webmail(db: Session, user: User, *, mailbox_id: int, url: str) -> str:
    """Save (or clear, when empty) the account's webmail address; returns what was saved."""
    mailbox = mailboxes.get_mailbox(db, user, mailbox_id)
    server = get_mail_server(db, mailbox.id)
    if server is None:
        raise InvalidInput(
            "Only IMAP/SMTP accounts have a webmail address: Gmail and Outlook replies link "
            "to their thread by themselves.",
            code="not_a_server_account",
        )
    cleaned = url.strip()
    if cleaned and not _web_address(cleaned):
        raise InvalidInput(
            "Enter the webmail address as a full web address, such as https://mail.example.com/.",
            code="invalid_webmail_url",
        )
    server.webmail_url = cleaned
    db.flush()
    return cleaned


def _web_address(url: str) -> bool:
    """An http(s) address with a host: anything else could not be opened (or could run)."""
    if len(url) > 2000 or any(char.isspace() for char in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("https", "http") and bool(host)


def received_words(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
