"""The sandbox's memory: mailboxes, grants, messages and queued faults. Never Sendwell's data."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Literal

ProviderKind = Literal["google", "microsoft"]
Folder = Literal["sent", "inbox"]

ACCESS_TOKEN_SECONDS = 3599
CODE_SECONDS = 600
SEND_FAULTS = frozenset(
    {
        "rate_limit",
        "rate_limit_fractional",
        "rate_limit_bare",
        "server_error",
        "timeout",
        "drop_after_accept",
        "quota_bounce",
    }
)
API_FAULTS = frozenset(
    {"unauthorized", "forbidden", "mailbox_not_enabled", "quota_exceeded", "mailbox_full"}
)
GOOGLE_SUFFIX = "gmail.test"
MICROSOFT_SUFFIX = "outlook.test"


def provider_for(address: str) -> ProviderKind | None:
    """Which emulator owns an address, by its domain."""
    domain = address.rsplit("@", 1)[-1].lower()
    if domain.endswith(GOOGLE_SUFFIX):
        return "google"
    if domain.endswith(MICROSOFT_SUFFIX):
        return "microsoft"
    return None


class SandboxClock:
    """The sandbox's time: the real clock plus however far tests have moved it forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> datetime:
        self.offset += timedelta(seconds=seconds)
        return self.now()


@dataclass
class RegisteredClient:
    """An OAuth client as the host's console registers it (Google Cloud or Entra)."""

    provider: ProviderKind
    client_id: str
    secret: str
    redirect_uris: tuple[str, ...]
    secret_expires_at: datetime | None = None
    # Google only: "testing" gives refresh tokens a 7-day life.
    publishing_status: Literal["testing", "production"] = "production"
    # Google revokes per project: every client of it loses the user's grant at once.
    project: str = ""

    def __post_init__(self) -> None:
        self.project = self.project or self.client_id


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    folder: Folder
    message_id: str
    sender: str
    to: list[str]
    subject: str
    headers: list[tuple[str, str]]
    at: datetime
    history_id: int
    # When the mailbox's API first shows it: a copy saved after the send's answer.
    visible_at: datetime
    # Deleted by its owner: gone from listings and reads, its history record stays.
    deleted: bool = False
    # False for a message the host accepted but never delivered (a quota bounce).
    delivered: bool = True

    def visible(self, moment: datetime) -> bool:
        return not self.deleted and self.visible_at <= moment

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return ""


@dataclass
class MailboxSettings:
    """How the emulated host behaves for one mailbox (the admin API changes it)."""

    # Graph answers sendMail before transport runs; the copy in Sent Items and any
    # non-delivery report appear this many seconds later.
    sent_copy_delay: float = 0.0
    # Exchange may drop custom (X-) headers of MIME sends.
    drop_custom_headers: bool = False
    # Exchange Online: over this many messages a minute, the rest are carried over to the
    # following minutes; over this many recipients a day, submission is refused.
    messages_per_minute: int = 30
    recipients_per_day: int = 10_000
    # Graph: this many requests to one mailbox at once, then 429 MailboxConcurrency.
    concurrent_requests: int = 4
    # How long the host takes to accept a send (seconds): a real one answers over the
    # internet, not in the few milliseconds of loopback.
    answer_delay: float = 0.0


@dataclass
class Mailbox:
    address: str
    provider: ProviderKind
    subject: str
    display_name: str
    messages: list[StoredMessage] = field(default_factory=list)
    send_faults: deque[str] = field(default_factory=deque)
    api_faults: deque[str] = field(default_factory=deque)
    token_errors: deque[str] = field(default_factory=deque)
    history_id: int = 1000
    settings: MailboxSettings = field(default_factory=lambda: MailboxSettings())
    # Requests being answered now, for the host's per-mailbox concurrency limit.
    in_flight: int = 0

    def next_history_id(self) -> int:
        self.history_id += 1
        return self.history_id

    def shown_history_id(self, moment: datetime) -> int:
        """The newest history id a client may see: short of any message not shown yet, so a
        cursor never passes a message before it appears."""
        hidden = [m.history_id for m in self.messages if m.visible_at > moment]
        return min([self.history_id, *(h - 1 for h in hidden)])


@dataclass
class Grant:
    """One consent: its refresh tokens and access tokens live and die together."""

    address: str
    client_id: str
    scopes: frozenset[str]
    revoked: bool = False


@dataclass
class Token:
    value: str
    kind: Literal["access", "refresh"]
    grant: Grant
    expires_at: datetime | None
    issued_at: datetime
    last_used_at: datetime
    # One refresh token ended on its own (the live-token cap, a password change).
    revoked: bool = False


@dataclass
class AuthorizationCode:
    code: str
    grant: Grant
    redirect_uri: str
    code_challenge: str
    expires_at: datetime
    used: bool = False


@dataclass
class PendingSignIn:
    """An authorization request between the sign-in page and the consent page."""

    id: str
    provider: ProviderKind
    client_id: str
    redirect_uri: str
    state: str
    scopes: tuple[str, ...]
    code_challenge: str
    login_hint: str
    address: str = ""


class SandboxState:
    """All emulated data, guarded by one lock (the sandbox is small and not a hot path)."""

    def __init__(self, clients: Iterable[RegisteredClient] = ()) -> None:
        self.lock = threading.RLock()
        self.clock = SandboxClock()
        # The clients the server was started with; reset() returns to them.
        self.configured_clients = list(clients)
        # How long the "timeout" fault holds a request: longer than any client waits.
        self.timeout_seconds = 30.0
        self.reset()

    def now(self) -> datetime:
        return self.clock.now()

    def reset(self) -> None:
        with self.lock:
            self.timeout_seconds = 30.0
            self.clock.offset = timedelta()
            self.clients = {(c.provider, c.client_id): replace(c) for c in self.configured_clients}
            self.mailboxes: dict[str, Mailbox] = {}
            self.tokens: dict[str, Token] = {}
            self.codes: dict[str, AuthorizationCode] = {}
            self.pending: dict[str, PendingSignIn] = {}
            self.issued_refresh_tokens: list[str] = []

    def client(self, provider: ProviderKind, client_id: str) -> RegisteredClient | None:
        with self.lock:
            return self.clients.get((provider, client_id))

    def register(self, client: RegisteredClient) -> None:
        """Add a client, or replace the one with the same id (as editing it in the console)."""
        with self.lock:
            self.clients[(client.provider, client.client_id)] = client

    def mailbox(self, address: str) -> Mailbox:
        """The mailbox for an address, created on first use like a real account would exist."""
        key = address.strip().lower()
        provider = provider_for(key)
        if provider is None:
            raise KeyError(key)
        with self.lock:
            if key not in self.mailboxes:
                self.mailboxes[key] = Mailbox(
                    address=key,
                    provider=provider,
                    subject=_new_subject(provider),
                    display_name=key.split("@")[0].replace(".", " ").title(),
                )
            return self.mailboxes[key]

    def recreate(self, address: str) -> Mailbox:
        """Delete and re-create a mailbox: same address, new subject id, no grants."""
        with self.lock:
            self.revoke_all(address)
            self.mailboxes.pop(address.strip().lower(), None)
            return self.mailbox(address)

    def issue_code(self, pending: PendingSignIn, scopes: frozenset[str]) -> AuthorizationCode:
        with self.lock:
            grant = Grant(address=pending.address, client_id=pending.client_id, scopes=scopes)
            code = AuthorizationCode(
                code=_token("4/0A" if pending.provider == "google" else "M.C5"),
                grant=grant,
                redirect_uri=pending.redirect_uri,
                code_challenge=pending.code_challenge,
                expires_at=self.now() + timedelta(seconds=CODE_SECONDS),
            )
            self.codes[code.code] = code
            return code

    def spend_code(self, code: str) -> AuthorizationCode | None:
        """An authorization code, usable once and before it expires; None otherwise."""
        with self.lock:
            stored = self.codes.get(code)
            if stored is None:
                return None
            usable = not stored.used and stored.expires_at > self.now()
            stored.used = True
        return stored if usable else None

    def issue_tokens(
        self, grant: Grant, *, with_refresh: bool, refresh_lifetime: timedelta | None = None
    ) -> tuple[Token, Token | None]:
        """A new access token, and a refresh token when asked (expiring only when given a life)."""
        provider = provider_for(grant.address)
        with self.lock:
            issued = self.now()
            access = Token(
                value=_token("ya29." if provider == "google" else "eyJ0eXAiOiJKV1Qi."),
                kind="access",
                grant=grant,
                expires_at=issued + timedelta(seconds=ACCESS_TOKEN_SECONDS),
                issued_at=issued,
                last_used_at=issued,
            )
            self.tokens[access.value] = access
            refresh = None
            if with_refresh:
                refresh = Token(
                    value=_token("1//0g" if provider == "google" else "0.AX"),
                    kind="refresh",
                    grant=grant,
                    expires_at=issued + refresh_lifetime if refresh_lifetime else None,
                    issued_at=issued,
                    last_used_at=issued,
                )
                self.tokens[refresh.value] = refresh
                self.issued_refresh_tokens.append(refresh.value)
            return access, refresh

    def live_token(self, value: str, kind: Literal["access", "refresh"]) -> Token | None:
        with self.lock:
            token = self.tokens.get(value)
        if token is None or token.kind != kind or token.grant.revoked or token.revoked:
            return None
        if token.expires_at is not None and token.expires_at <= self.now():
            return None
        return token

    def live_refresh_tokens(self, client_id: str, address: str) -> list[Token]:
        """A user's live refresh tokens for one client, oldest first."""
        with self.lock:
            tokens = [
                t
                for t in self.tokens.values()
                if t.kind == "refresh"
                and t.grant.client_id == client_id
                and t.grant.address == address
            ]
        live = [t for t in tokens if self.live_token(t.value, "refresh") is not None]
        return sorted(live, key=lambda t: t.issued_at)

    def end_refresh_tokens(self, address: str, *, with_any_of: frozenset[str]) -> int:
        """End a mailbox's live refresh tokens whose grant holds one of these scopes."""
        key = address.strip().lower()
        ended = 0
        with self.lock:
            for token in self.tokens.values():
                if (
                    token.kind == "refresh"
                    and token.grant.address == key
                    and token.grant.scopes & with_any_of
                    and self.live_token(token.value, "refresh") is not None
                ):
                    token.revoked = True
                    ended += 1
        return ended

    def revoke_all(self, address: str, client_ids: frozenset[str] | None = None) -> int:
        """Revoke every grant of a mailbox (to these clients only, when given); count live ones."""
        key = address.strip().lower()
        with self.lock:
            grants = {
                id(t.grant): t.grant
                for t in self.tokens.values()
                if t.grant.address == key
                and (client_ids is None or t.grant.client_id in client_ids)
            }
            live = [grant for grant in grants.values() if not grant.revoked]
            for grant in live:
                grant.revoked = True
            return len(live)

    def expire_access_tokens(self, address: str) -> None:
        key = address.strip().lower()
        with self.lock:
            for token in self.tokens.values():
                if token.kind == "access" and token.grant.address == key:
                    token.expires_at = self.now() - timedelta(seconds=1)

    def store(
        self,
        mailbox: Mailbox,
        parsed: Message,
        *,
        folder: Folder,
        thread_id: str,
        message_id: str,
        sender: str,
        visible_at: datetime | None = None,
    ) -> StoredMessage:
        """Keep a message; a sent copy shows after the mailbox's delay unless told when."""
        delay = timedelta(seconds=mailbox.settings.sent_copy_delay if folder == "sent" else 0)
        moment = self.now()
        if folder == "inbox" and visible_at is not None:
            # A message arrives when it shows: that is its received time.
            moment = visible_at
        with self.lock:
            stored = StoredMessage(
                id=secrets.token_hex(8),
                thread_id=thread_id,
                folder=folder,
                message_id=message_id,
                sender=sender,
                to=[value for key, value in parsed.items() if key.lower() in ("to", "cc")],
                subject=str(parsed.get("Subject", "")),
                headers=[(key, str(value)) for key, value in parsed.items()],
                at=moment,
                history_id=mailbox.next_history_id(),
                visible_at=moment if folder == "inbox" else (visible_at or moment + delay),
            )
            mailbox.messages.append(stored)
            return stored

    def find_message(self, mailbox: Mailbox, message_id: str) -> StoredMessage | None:
        """A mailbox's message by provider id or by Message-ID header."""
        with self.lock:
            for message in mailbox.messages:
                if message_id in (message.id, message.message_id):
                    return message
        return None


def _token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def _new_subject(provider: ProviderKind) -> str:
    if provider == "google":
        return str(100000000000000000000 + secrets.randbelow(10**20))
    return str(uuid.uuid4())
