"""A step as a recipient receives it, and "Send a test to me".

Both build the message with the sending engine's own pieces (campaigns/threads.py renders,
dispatch/mime.py builds the MIME with the unsubscribe header and footer), so what is shown
or tested is what the send makes. A test email goes through the campaign's account by the
provider's real path, but it is never a ledger row: it is no recipient's step, counts toward
no cap and changes nobody's sequence.

Who may receive a test: the signed-in user, a teammate (an active user of the workspace) or
the sending account itself. Any other address is refused, so "test" cannot become a way to
mail people outside the campaign's rules (suppression list, caps, ledger).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from sendwell.accounts import repository as accounts_repo
from sendwell.campaigns import repository as repo
from sendwell.campaigns import service, templates, threads
from sendwell.campaigns.validation import recipient_values, sender_fields
from sendwell.dispatch import repository as dispatch_repo
from sendwell.dispatch.mime import Envelope, build_message
from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.kit.errors import Conflict, InvalidInput, NotFound, SendwellError, TooManyAttempts
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tokens import HeldCredential, MailboxNotConnected
from sendwell.models import Campaign, Mailbox, MailboxStatus, TestSend, User
from sendwell.providers.errors import (
    AuthRevoked,
    InsufficientScope,
    ProviderError,
    RateLimited,
    RecipientRejected,
)

TEST_PREFIX = "[Test] "
TESTS_PER_MINUTE = 10
# Who a sample recipient is when the campaign has none yet (or "Sample" is chosen).
SAMPLE_RECIPIENT: dict[str, Any] = {
    "email": templates.SAMPLE_FIELDS["email"],
    "first_name": templates.SAMPLE_FIELDS["first_name"],
    "last_name": templates.SAMPLE_FIELDS["last_name"],
    "company": templates.SAMPLE_FIELDS["company"],
    "title": templates.SAMPLE_FIELDS["title"],
    "fields": {},
}


@dataclass(frozen=True)
class Composed:
    """A step's message for one recipient, as built for sending."""

    step: int
    recipient_id: int | None  # None: the sample recipient
    recipient_email: str
    to: str
    subject: str
    text: str
    html: str
    headers: list[tuple[str, str]]
    mime: bytes
    tag: str


@dataclass(frozen=True)
class TestSent:
    to: str
    subject: str
    step: int
    recipient_email: str
    mailbox_email: str


def recipient_values_or_sample(
    db: Session, campaign: Campaign, recipient_id: int | None
) -> tuple[int | None, dict[str, Any]]:
    """A recipient's merge-field values, or the sample recipient's when none is chosen."""
    if recipient_id:
        enrollment = repo.get_enrollment(db, campaign.id, recipient_id)
        if enrollment is None:
            raise NotFound("This campaign has no such recipient.", code="unknown_recipient")
        return enrollment.id, recipient_values(enrollment)
    return None, dict(SAMPLE_RECIPIENT)


def compose(
    db: Session,
    campaign: Campaign,
    links: UnsubscribeLinks,
    *,
    step: int,
    recipient_id: int | None,
    test_to: str = "",
) -> Composed:
    """Step `step` for the recipient (or the sample), built as the send builds it.

    For a test (`test_to`), the message goes to that address with "[Test] " before the
    subject, and its unsubscribe link is the test address's own: clicking it in a test can
    never unsubscribe the real recipient.
    """
    if not any(s.position == step for s in campaign.steps):
        raise NotFound(f"The campaign has no step {step}.", code="unknown_step")
    mailbox = mailbox_repo.get_mailbox(db, campaign.mailbox_id)
    if mailbox is None:
        raise NotFound("The campaign's sending account no longer exists.", code="unknown_mailbox")
    chosen_id, values = recipient_values_or_sample(db, campaign, recipient_id)
    fields = templates.merge_fields(values, sender_fields(campaign, mailbox))
    # A reply step's subject is its thread's, rendered for this recipient, in reply form:
    # what the send uses before the thread's first message is known.
    rendered = threads.render_step(campaign.steps, step, fields)
    if test_to:
        rendered = templates.RenderedStep(
            TEST_PREFIX + rendered.subject, rendered.body, rendered.body_html
        )
    to = test_to or str(values["email"])
    name = " ".join(str(values.get(k) or "") for k in ("first_name", "last_name")).strip()
    tag = f"test-{uuid.uuid4().hex}" if test_to else f"preview-{uuid.uuid4().hex}"
    mime = build_message(
        rendered,
        Envelope(
            sender_email=mailbox.email,
            sender_name=mailbox.display_name,
            recipient_email=to,
            recipient_name="" if test_to else name,
            tag=tag,
            unsubscribe_url=links.url(campaign.workspace_id, to),
            unsubscribe_footer=campaign.unsubscribe_footer,
        ),
    )
    parsed = message_from_bytes(mime, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    text_part = parsed.get_body(("plain",))
    html_part = parsed.get_body(("html",)) if rendered.body_html else None
    return Composed(
        step=step,
        recipient_id=chosen_id,
        recipient_email=str(values["email"]),
        to=to,
        subject=rendered.subject,
        text=text_part.get_content() if isinstance(text_part, EmailMessage) else "",
        html=html_part.get_content() if isinstance(html_part, EmailMessage) else "",
        headers=[
            (key, str(value))
            for key, value in parsed.items()
            if key in ("From", "To", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post")
        ],
        mime=mime,
        tag=tag,
    )


def allowed_addresses(db: Session, user: User, mailbox: Mailbox | None) -> list[str]:
    """Where a test may go: the user, their active teammates, the sending account."""
    found = [user.email]
    found += [
        email
        for email in accounts_repo.active_user_emails(db, user.workspace_id)
        if email.casefold() != user.email.casefold()
    ]
    if mailbox is not None and mailbox.email.casefold() not in {e.casefold() for e in found}:
        found.append(mailbox.email)
    return found


def tests_in_last_minute(db: Session, user: User, now: datetime) -> tuple[int, datetime | None]:
    return dispatch_repo.test_sends_since(db, user.id, now - timedelta(minutes=1))


def send_test(
    db: Session,
    factory: sessionmaker[Session],
    services: ProviderServices,
    links: UnsubscribeLinks,
    user: User,
    campaign_id: int,
    *,
    step: int,
    recipient_id: int | None,
    to: str,
    now: datetime,
) -> TestSent:
    """Send step `step`, rendered for the recipient, to `to` through the campaign's account."""
    campaign = service.get_campaign(db, user, campaign_id)
    mailbox = mailbox_repo.get_mailbox(db, campaign.mailbox_id)
    to = (to or user.email).strip()
    allowed = allowed_addresses(db, user, mailbox)
    if to.casefold() not in {a.casefold() for a in allowed}:
        raise InvalidInput(
            f"A test can go only to your own address, a teammate's or the sending account's "
            f"({', '.join(allowed)}); {to} is none of them.",
            code="test_address_not_allowed",
        )
    to = next(a for a in allowed if a.casefold() == to.casefold())
    if mailbox is None or mailbox.status is not MailboxStatus.CONNECTED:
        raise _not_connected(mailbox)
    service.check_sender(db, campaign, mailbox)
    count, oldest = tests_in_last_minute(db, user, now)
    if count >= TESTS_PER_MINUTE and oldest is not None:
        wait = max(1, int((oldest + timedelta(minutes=1) - now).total_seconds()) + 1)
        raise TooManyAttempts(
            f"You sent {TESTS_PER_MINUTE} test emails in the last minute. "
            f"Send the next one in {wait} seconds.",
            retry_after_seconds=wait,
        )
    message = compose(db, campaign, links, step=step, recipient_id=recipient_id, test_to=to)
    host = services.mail_host(mailbox.provider)
    mailbox_id, mailbox_email, label = mailbox.id, mailbox.email, mailbox.provider.label
    try:
        HeldCredential(factory, services, mailbox_id).call(
            lambda held: host.send(held, message.mime, tag=message.tag)
        )
    except MailboxNotConnected:
        db.expire(mailbox)
        raise _not_connected(mailbox) from None
    except (AuthRevoked, InsufficientScope):
        # The account was marked as needing reauthentication by the failed call.
        raise Conflict(
            f"The test was not sent: {mailbox_email} needs reauthentication. Reauthenticate it "
            "in the Settings tab, then send the test again.",
            code="mailbox_not_connected",
        ) from None
    except RateLimited:
        raise TooManyAttempts(
            f"The test was not sent: {label} asks to slow down for now. Try again in a "
            "few minutes.",
            retry_after_seconds=60,
        ) from None
    except RecipientRejected as error:
        raise InvalidInput(
            f"The test was not sent: the mail host refused {to} ({error.message}).",
            code="test_recipient_rejected",
        ) from None
    except ProviderError as error:
        raise TestNotSent(
            f"The test was not sent: {label} answered “{error.message}”. Try again shortly."
        ) from None
    db.add(
        TestSend(
            workspace_id=campaign.workspace_id,
            user_id=user.id,
            campaign_id=campaign.id,
            mailbox_id=mailbox_id,
            step_position=step,
            to_email=to,
            subject=message.subject[:1000],
            sent_at=now,
        )
    )
    db.flush()
    return TestSent(to, message.subject, step, message.recipient_email, mailbox_email)


class TestNotSent(SendwellError):
    __test__ = False
    status_code = 502
    code = "test_not_sent"


def _not_connected(mailbox: Mailbox | None) -> Conflict:
    if mailbox is None:
        return Conflict("The campaign's sending account no longer exists.", code="mailbox_gone")
    return Conflict(
        f"The test was not sent: tests go through the campaign's account, and {mailbox.email} "
        "is not connected. Reauthenticate or link it again in the Settings tab first.",
        code="mailbox_not_connected",
    )
