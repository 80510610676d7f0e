"""The message a step becomes: RFC 5322 headers, threading, one-click unsubscribe, our tag."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sendwell.campaigns.templates import RenderedStep, check_header_value
from sendwell.kit.clock import utcnow
from sendwell.providers.base import TAG_HEADER


class _HeaderClasses(HeaderRegistry):
    """The standard library's header classes, each made once.

    `HeaderRegistry` makes a new class for every header it is asked for; with a dozen headers
    a message, that was most of the time spent building one. The classes hold no state of
    their own, so one per header name serves every message.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# The default policy (RFC 5322 headers, 78-character lines for choosing a body's encoding).
POLICY = policy.default.clone(header_factory=_HeaderClasses())


@dataclass(frozen=True)
class Envelope:
    sender_email: str
    sender_name: str
    recipient_email: str
    recipient_name: str
    tag: str
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    unsubscribe_url: str = ""
    unsubscribe_footer: bool = False


@functools.lru_cache(maxsize=64)
def _sender(name: str, email: str) -> BaseHeader:
    """A mailbox's From header, made once for a run of its sends: it is the same on every
    message the mailbox sends (a header object is never changed once made, so messages can
    share it). A header keeps its parse tree, about 16 KB: kept for a few dozen senders, it
    serves a mailbox sending a batch; a fleet of paced mailboxes, each sending once a gap,
    would find its header gone whatever the size, and 1,024 of them were 17 MB of a worker."""
    header: BaseHeader = POLICY.header_factory(
        "From", Address(check_header_value(name, "The sender name"), addr_spec=email)
    )
    return header


def build_message(step: RenderedStep, envelope: Envelope) -> bytes:
    """A complete message; header values are checked so no merge field can add a header."""
    message = EmailMessage(policy=POLICY)
    message["From"] = _sender(envelope.sender_name, envelope.sender_email)
    message["To"] = Address(
        check_header_value(envelope.recipient_name, "The recipient name"),
        addr_spec=envelope.recipient_email,
    )
    message["Subject"] = step.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=envelope.sender_email.rsplit("@", 1)[-1])
    message[TAG_HEADER] = envelope.tag
    if envelope.in_reply_to:
        message["In-Reply-To"] = envelope.in_reply_to
        message["References"] = " ".join([*envelope.references, envelope.in_reply_to][-20:])
    if envelope.unsubscribe_url:
        # RFC 8058 one-click unsubscribe: mail clients POST "List-Unsubscribe=One-Click".
        message["List-Unsubscribe"] = f"<{envelope.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    body = step.body
    if envelope.unsubscribe_footer and envelope.unsubscribe_url:
        body = (
            f"{body.rstrip()}\n\n--\nTo stop receiving these emails: {envelope.unsubscribe_url}\n"
        )
    message.set_content(body)
    if step.body_html:
        html = step.body_html
        if envelope.unsubscribe_footer and envelope.unsubscribe_url:
            html += (
                f'<p style="font-size:12px;color:#666"><a href="{envelope.unsubscribe_url}">'
                "Unsubscribe</a></p>"
            )
        message.add_alternative(html, subtype="html")
    # Long header values (the unsubscribe URL) stay on folded lines instead of becoming
    # RFC 2047 encoded words, which mail clients would not read as a URL.
    return message.as_bytes(policy=message.policy.clone(max_line_length=998))
