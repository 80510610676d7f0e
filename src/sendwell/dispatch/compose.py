"""Composing a claimed step: its templates rendered into the recipient's thread, as MIME.

One entry, `compose`: a claimed ledger row with its recipient, campaign, step and mailbox in,
a `Ready` out — the message to send, or why there is none now (a template that cannot be
rendered, or a reply whose thread's last message has no known id yet). It reads nothing from
the database and writes only the subject onto the claimed row, so the claim's transaction
keeps what was composed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sendwell.campaigns import templates, threads
from sendwell.campaigns.validation import recipient_values, sender_fields
from sendwell.dispatch import repository as repo
from sendwell.dispatch.mime import Envelope, build_message
from sendwell.dispatch.policy import Claim
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import SendwellError
from sendwell.models import Campaign, CampaignStep, Enrollment, Mailbox, SendLedger
from sendwell.providers.base import ProviderName

# How soon a reply waiting for its thread's Message-ID is looked at again.
THREAD_WAIT = timedelta(seconds=5)


class CannotRender(SendwellError):
    code = "cannot_render"


class WaitForThread(SendwellError):
    """Not now: the message this one replies to has no known Message-ID yet."""

    code = "wait_for_thread"

    def __init__(self, message: str, *, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


@dataclass(frozen=True)
class Prepared:
    provider: ProviderName
    mime: bytes
    tag: str
    thread_id: str | None


@dataclass(frozen=True)
class Ready:
    """A claimed step with its message, or the reason it cannot be composed."""

    claim: Claim
    prepared: Prepared | None
    problem: str = ""
    # Not composed yet, but not a failure either: try again from this moment.
    wait_until: datetime | None = None


class UnsubscribeUrl(Protocol):
    """What composing needs of the unsubscribe links (`outcomes.UnsubscribeLinks`)."""

    def url(self, workspace_id: int, email: str) -> str: ...


def compose(
    row: SendLedger,
    enrollment: Enrollment,
    campaign: Campaign,
    step: CampaignStep,
    mailbox: Mailbox,
    earlier: list[SendLedger],
    *,
    links: UnsubscribeUrl,
) -> Ready:
    """The claimed step's message, or why it has none now; `earlier` are the recipient's
    sent steps (before this one or not: only those before it count)."""
    claim = Claim(row.id, row.mailbox_id)
    before = [r for r in earlier if r.step_position < step.position]
    try:
        return Ready(claim, message(row, enrollment, campaign, step, mailbox, before, links=links))
    except CannotRender as error:
        return Ready(claim, None, error.message)
    except WaitForThread as error:
        return Ready(claim, None, error.message, wait_until=error.retry_at)


def message(
    row: SendLedger,
    enrollment: Enrollment,
    campaign: Campaign,
    step: CampaignStep,
    mailbox: Mailbox,
    earlier: list[SendLedger],
    *,
    links: UnsubscribeUrl,
) -> Prepared:
    """The message for a claimed step; `earlier` are the recipient's sent steps before it.

    A reply goes into the thread its first message began: In-Reply-To the thread's last
    message, References to all of them, and the thread's subject in reply form.
    """
    fields = templates.merge_fields(recipient_values(enrollment), sender_fields(campaign, mailbox))
    in_thread, reply_to = thread_so_far(campaign.steps, step.position, earlier)
    if reply_to is not None and not reply_to.message_id_header:
        _wait_for_thread(reply_to)
    try:
        rendered = threads.render_step(
            campaign.steps, step.position, fields, in_thread[0].subject if reply_to else ""
        )
    except templates.TemplateProblem as error:
        raise CannotRender(error.message) from None
    row.subject = rendered.subject
    envelope = Envelope(
        sender_email=mailbox.email,
        sender_name=mailbox.display_name,
        recipient_email=enrollment.email,
        recipient_name=" ".join(p for p in (enrollment.first_name, enrollment.last_name) if p),
        tag=row.tag,
        in_reply_to=reply_to.message_id_header if reply_to else "",
        references=tuple(r.message_id_header for r in in_thread[:-1] if r.message_id_header)
        if reply_to
        else (),
        unsubscribe_url=links.url(campaign.workspace_id, enrollment.email),
        unsubscribe_footer=campaign.unsubscribe_footer,
    )
    return Prepared(
        mailbox.provider,
        build_message(rendered, envelope),
        row.tag,
        reply_to.thread_id if reply_to else None,
    )


def _wait_for_thread(previous: SendLedger) -> None:
    if waits_for_thread(previous):
        raise WaitForThread(
            f"Waiting for step {previous.step_position}'s copy in Sent to thread the reply.",
            retry_at=utcnow() + THREAD_WAIT,
        )


def thread_so_far(
    steps: list[CampaignStep], position: int, earlier: list[SendLedger]
) -> tuple[list[SendLedger], SendLedger | None]:
    """The recipient's sent messages in the thread step `position` goes into, and the one it
    answers (None when the step begins a thread)."""
    start = threads.thread_start(steps, position)
    in_thread = [r for r in earlier if r.step_position >= start]
    return in_thread, (in_thread[-1] if in_thread and start < position else None)


def waits_for_thread(previous: SendLedger) -> bool:
    """A reply waits while the message it answers is sent but not yet found in Sent (Graph
    answers before its copy exists): sent now, it could not be threaded. Once the look-up
    has given up, it goes with what is known rather than never."""
    if previous.message_id_header:
        return False
    return utcnow() - (previous.sent_at or utcnow()) < repo.METADATA_LOOKUP
