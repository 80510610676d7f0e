"""Plain-text notices by email from the server's own SMTP account (`SENDWELL_SMTP_URL`): who
is told of what is the notifications feature's rule; how a notice is sent is this.

A notice about a change goes out once the change's unit of work commits, and never when it
rolls back: the session factory carries the server's `Outgoing` mail (None without
`SENDWELL_SMTP_URL`), and `send_after_commit` hands it the notice at commit.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import partial
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy.orm import Session

from sendwell.kit.clock import utcnow
from sendwell.kit.logging import get_logger
from sendwell.kit.signals import call_after_commit

log = get_logger(__name__)
# Called as mailer(to, subject, text); never raises.
Mailer = Callable[[str, str, str], None]
_OUTGOING = "sendwell_outgoing_mail"


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    username: str
    password: str
    sender: str


def parse_smtp_url(url: str) -> SmtpTarget:
    """smtp://user:password@host:587?from=a@b (STARTTLS when offered) or smtps:// (TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("must look like smtp://user:password@host:587?from=sendwell@example.com")
    sender = parse_qs(parts.query).get("from", [""])[0]
    if "@" not in sender:
        raise ValueError("needs ?from=address, the sender of notification emails")
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if parts.scheme == "smtps" else 587),
        implicit_tls=parts.scheme == "smtps",
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        sender=sender,
    )


def send_notice(target: SmtpTarget, to: str, subject: str, text: str, *, timeout: float) -> None:
    """Email one plain-text notice; failures are logged, never raised."""
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=target.sender.rsplit("@", 1)[-1])
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    try:
        _send(target, message, timeout)
    except (OSError, smtplib.SMTPException) as error:
        log.warning("notification_failed", reason=type(error).__name__)


def _send(target: SmtpTarget, message: EmailMessage, timeout: float) -> None:
    context = ssl.create_default_context()
    if target.implicit_tls:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            target.host, target.port, timeout=timeout, context=context
        )
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=timeout)
    with client:
        if not target.implicit_tls and client.has_extn("starttls"):
            client.starttls(context=context)
        if target.username:
            client.login(target.username, target.password)
        client.send_message(message)


@dataclass(frozen=True)
class Outgoing:
    """How this server emails notices, and the address its links start with."""

    mailer: Mailer
    base_url: str


def outgoing_mail(smtp_url: str, base_url: str) -> Outgoing | None:
    """The server's outgoing mail from its settings; None when it has none."""
    if not smtp_url:
        return None
    return Outgoing(partial(send_notice, parse_smtp_url(smtp_url), timeout=10.0), base_url)


def session_info(outgoing: Outgoing | None) -> dict[str, object]:
    """What a session factory gives each session so that its notices can be sent."""
    return {_OUTGOING: outgoing}


def outgoing_of(db: Session) -> Outgoing | None:
    """Where this unit of work's notices go; None when they go nowhere."""
    found = db.info.get(_OUTGOING)
    return found if isinstance(found, Outgoing) else None


def send_after_commit(db: Session, outgoing: Outgoing, to: str, subject: str, text: str) -> None:
    """Email a notice once this unit of work commits (never if it rolls back)."""
    call_after_commit(db, lambda: outgoing.mailer(to, subject, text))
