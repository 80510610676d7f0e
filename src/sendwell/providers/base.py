"""What mail hosts offer.

Two capabilities: ``SignIn`` (an OAuth sign-in page and token upkeep, for the hosts that have
one) and ``MailHost`` (sending and reading mail, for every host). The provider modules are the
one place that knows vendor endpoints and error codes; they translate every failure into one
of the errors of ``providers.errors`` before it leaves ``providers/``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sendwell.providers.credentials import Credential

# Our own header on every message we send, found again in the Sent folder after a crash.
TAG_HEADER = "X-Sendwell-Send-Id"
# How far our clock and the host's may disagree when Sent is searched back to a moment.
SENT_CLOCK_SLACK = timedelta(minutes=1)


class ProviderName(enum.StrEnum):
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    IMAP = "imap"

    @property
    def label(self) -> str:
        """The host's name as users read it."""
        return HOSTS[self].label

    @property
    def choice(self) -> str:
        """The host as offered when Sendwell cannot tell an address's host by itself."""
        return HOSTS[self].choice

    @property
    def has_sign_in_page(self) -> bool:
        """True when accounts link on the host's sign-in page; False when by server settings
        and password (and reauthenticate by entering the password again)."""
        return HOSTS[self].has_sign_in_page


@dataclass(frozen=True)
class Host:
    """What users are told about a host, and how its accounts are linked."""

    label: str
    choice: str
    has_sign_in_page: bool


HOSTS = {
    ProviderName.GOOGLE: Host("Google", "Google (Gmail, Google Workspace)", True),
    ProviderName.MICROSOFT: Host("Microsoft", "Microsoft (Outlook, Microsoft 365)", True),
    ProviderName.IMAP: Host("IMAP/SMTP", "IMAP/SMTP: Other (any host with IMAP and SMTP)", False),
}


@dataclass(frozen=True)
class Permission:
    """A scope we request, with the words the user and their admin are shown for it."""

    scope: str
    label: str
    reason: str


@dataclass(frozen=True)
class TokenSet:
    """Tokens from a code exchange or a refresh. ``refresh_token`` is None when not rotated."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scopes: frozenset[str]


@dataclass(frozen=True)
class Identity:
    """Who signed in: the provider's stable subject id and the mailbox address."""

    subject: str
    email: str
    display_name: str = ""


@dataclass(frozen=True)
class Grant:
    """Everything a successful authorization yields."""

    tokens: TokenSet
    identity: Identity


@dataclass(frozen=True)
class SentMessage:
    """Where a sent message landed: provider id, thread or conversation, real Message-ID."""

    provider_message_id: str
    thread_id: str
    message_id_header: str


@dataclass(frozen=True)
class SentProbe:
    """What we know of one send, to recognise its copy in the Sent folder.

    Hosts that keep our tag header are searched by ``tag``; a host whose Sent copies carry no
    custom headers (Microsoft Graph) is searched by recipient and subject since ``since``
    (when the send was claimed), less ``SENT_CLOCK_SLACK``.
    """

    tag: str
    recipient: str
    subject: str
    since: datetime


@dataclass(frozen=True)
class InboundMessage:
    """Metadata of a message that arrived in the mailbox (never its body)."""

    provider_message_id: str
    thread_id: str
    message_id_header: str
    from_address: str
    subject: str
    received_at: datetime
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    # A short text the host itself offers with the metadata (Gmail's snippet), "" otherwise.
    snippet: str = ""
    # The host's own link to open the message in its web mail (Graph's webLink), "" otherwise.
    web_link: str = ""


@dataclass(frozen=True)
class InboundPage:
    """Inbound messages since a cursor, oldest first, and the cursor to continue from."""

    messages: list[InboundMessage]
    cursor: str


class SignIn(Protocol):
    """A host's OAuth sign-in: authorization, token upkeep, revocation, admin consent."""

    name: ProviderName
    permissions: tuple[Permission, ...]

    def authorization_url(
        self, *, redirect_uri: str, state: str, code_verifier: str, login_hint: str
    ) -> str:
        """The provider's sign-in and consent page (authorization code + PKCE S256)."""
        ...

    def complete_authorization(
        self, *, callback_params: dict[str, str], redirect_uri: str, code_verifier: str
    ) -> Grant:
        """Turn the callback's query parameters into a grant, or raise why not."""
        ...

    def refresh(self, refresh_token: str) -> TokenSet:
        """New tokens from a refresh token; the rotated refresh token when the host rotates."""
        ...

    def revoke(self, token: str) -> bool:
        """Revoke a grant at the provider; False when the provider offers no way to."""
        ...

    def admin_consent_url(self, *, redirect_uri: str, state: str) -> str | None:
        """Where an organisation's administrator approves the app, when the host has one."""
        ...


class MailHost(Protocol):
    """A host's mail: sending, finding a send in Sent, reading inbound metadata.

    Every call takes the mailbox's ``Credential``; a host given the wrong kind raises a
    ``ProviderError`` with code ``wrong_credential``.
    """

    name: ProviderName
    # The shortest interval between two sends from one mailbox that the host takes without
    # holding them back; a mailbox's own minimum gap is never shorter.
    min_send_interval: timedelta
    # How late a send's copy may appear in Sent after the host answered: until then, not
    # finding it there proves nothing.
    sent_copy_lag: timedelta
    # Whether `find_sent` recognises the copy by our tag (at most one copy), or only by
    # recipient, subject and time (possibly several).
    sent_copies_by_tag: bool

    def send(
        self, credential: Credential, mime: bytes, *, tag: str, thread_id: str | None = None
    ) -> SentMessage:
        """Send a complete RFC 5322 message carrying our tag header; learn where it landed."""
        ...

    def find_sent(self, credential: Credential, probe: SentProbe) -> list[SentMessage]:
        """The Sent folder's copies that may be this send, newest first (reconciliation).

        Every message sent since ``probe.since`` is looked at, however many there are, so an
        empty list means it is not there. A host that keeps our tag returns at most the one
        copy carrying it; one that does not returns every copy to the same recipient with the
        same subject, and the caller decides which send each copy belongs to.
        """
        ...

    def list_inbound(self, credential: Credential, cursor: str | None) -> InboundPage:
        """Inbound message metadata since a cursor; None starts from now."""
        ...

    def probe(self, credential: Credential) -> None:
        """The cheapest authenticated call: proves the credential works, or raises why not."""
        ...
