"""Token upkeep: refresh ahead of expiry with compare-and-swap, classify failures, escalate.

Each step runs in its own short unit of work, so what was learnt from the provider (a rotated
token, a dead grant) is saved even when the caller's own work fails afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from sendwell.db import session_scope
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, NotFound
from sendwell.kit.logging import get_logger
from sendwell.kit.tokenbox import TokenBox
from sendwell.mailboxes import repository as repo
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.service import record_event, transition
from sendwell.models import Mailbox, MailboxEventKind, MailboxStatus, MailServer
from sendwell.providers.base import TokenSet
from sendwell.providers.credentials import AccessToken, Credential
from sendwell.providers.errors import AuthRevoked, InsufficientScope, ProviderError
from sendwell.providers.mail_server import AuthMethod, Endpoint, Security, ServerLogin

T = TypeVar("T")
log = get_logger(__name__)


class MailboxNotConnected(Conflict):
    code = "mailbox_not_connected"


def with_credential(
    factory: sessionmaker[Session],
    services: ProviderServices,
    mailbox_id: int,
    action: Callable[[Credential], T],
) -> T:
    """Run a provider call with a fresh credential; a 401 is believed only after a new token
    fails."""
    return HeldCredential(factory, services, mailbox_id).call(action)


class HeldCredential:
    """A mailbox's credential kept for a run of provider calls (a batch of sends).

    It is read (and decrypted) once, not once per call; it is read again when it has been
    held for HOLD without its mailbox's tokens being seen unchanged (`confirm`), before its
    access token is due for refresh, and when a 401 forces a refresh, so the calls after
    that use the new one.
    """

    HOLD = timedelta(seconds=60)

    def __init__(
        self, factory: sessionmaker[Session], services: ProviderServices, mailbox_id: int
    ) -> None:
        self.factory, self.services, self.mailbox_id = factory, services, mailbox_id
        self._credential: Credential | None = None
        # When to read it again at the latest: an access token before it is due for refresh.
        self._fresh_until: datetime | None = None
        self._stale_at = utcnow()

    def call(self, action: Callable[[Credential], T]) -> T:
        """Run a provider call; a 401 is believed only after a new token fails as well."""
        credential = self._credential
        if credential is None or self.stale(utcnow()):
            credential = self._read()
        try:
            return action(credential)
        except InsufficientScope as error:
            require_reauthentication(self.factory, self.mailbox_id, error)
            raise
        except AuthRevoked:
            credential = self._read(force_refresh=True)
        try:
            return action(credential)
        except AuthRevoked as error:
            require_reauthentication(self.factory, self.mailbox_id, error)
            raise

    def confirm(self) -> None:
        """Its mailbox's tokens were just read and are the ones held: kept for another HOLD
        (never past the access token's refresh time)."""
        if self._credential is not None:
            self._stale_at = self._within_freshness(utcnow() + self.HOLD)

    def stale(self, moment: datetime) -> bool:
        """Whether it would be read again at a use at this moment."""
        return self._credential is None or moment >= self._stale_at

    def spent(self, moment: datetime) -> bool:
        """Whether it would be read again at a use at this moment even if confirmed first:
        never read, or its access token due for refresh."""
        return self._credential is None or (
            self._fresh_until is not None and moment >= self._fresh_until
        )

    def _within_freshness(self, moment: datetime) -> datetime:
        return moment if self._fresh_until is None else min(moment, self._fresh_until)

    def _read(self, *, force_refresh: bool = False) -> Credential:
        self._credential, self._fresh_until = _fresh(
            self.factory, self.services, self.mailbox_id, force_refresh=force_refresh
        )
        self._stale_at = self._within_freshness(utcnow() + self.HOLD)
        return self._credential


class HeldCredentials:
    """The held credentials of many mailboxes, kept from one use to the next (a worker
    sending for thousands of paced mailboxes, one message each per pass, and reading their
    inboxes). Each claim and inbox read notes its mailbox's token version (`note`): a
    credential held for another version is dropped, one held for this version is kept for
    another HOLD. One whose access token is due for refresh, or that was not used for
    KEEP_UNUSED, is dropped (`sweep`); one only past its HOLD is kept, since the next note
    of an unchanged version confirms it: a quiet inbox read every few minutes does not read
    and decrypt its tokens again for each read."""

    KEEP_UNUSED = timedelta(minutes=15)

    def __init__(self, factory: sessionmaker[Session], services: ProviderServices) -> None:
        self.factory, self.services = factory, services
        self._held: dict[int, tuple[int | None, HeldCredential]] = {}
        self._versions: dict[int, int] = {}
        self._used: dict[int, datetime] = {}
        self._next_sweep = utcnow()

    def note(self, mailbox: Mailbox) -> None:
        """The mailbox's token version and status as just read: a credential held for another
        version, or of a mailbox no longer connected (a reauthentication does not change the
        version), is dropped; one held for this version kept."""
        self._versions[mailbox.id] = mailbox.token_version
        kept = self._held.get(mailbox.id)
        if kept is None:
            return
        if kept[0] != mailbox.token_version or mailbox.status is not MailboxStatus.CONNECTED:
            del self._held[mailbox.id]
        else:
            kept[1].confirm()

    def of(self, mailbox_id: int) -> HeldCredential:
        self._used[mailbox_id] = utcnow()
        kept = self._held.get(mailbox_id)
        if kept is None:
            kept = (
                self._versions.get(mailbox_id),
                HeldCredential(self.factory, self.services, mailbox_id),
            )
            self._held[mailbox_id] = kept
        return kept[1]

    def sweep(self) -> None:
        """Drop those that would be read again at their next use anyway, and those not used
        for KEEP_UNUSED."""
        now = utcnow()
        if now < self._next_sweep:
            return
        self._next_sweep = now + HeldCredential.HOLD
        unused_since = now - self.KEEP_UNUSED
        self._held = {
            mailbox_id: kept
            for mailbox_id, kept in self._held.items()
            if not kept[1].spent(now) and self._used.get(mailbox_id, now) > unused_since
        }
        self._used = {m: at for m, at in self._used.items() if at > unused_since}


def fresh_credential(
    factory: sessionmaker[Session],
    services: ProviderServices,
    mailbox_id: int,
    *,
    force_refresh: bool = False,
) -> Credential:
    """A usable credential: a password account's login, or an access token refreshed when it
    expires within the policy's margin."""
    return _fresh(factory, services, mailbox_id, force_refresh=force_refresh)[0]


def _fresh(
    factory: sessionmaker[Session],
    services: ProviderServices,
    mailbox_id: int,
    *,
    force_refresh: bool = False,
) -> tuple[Credential, datetime | None]:
    """`fresh_credential`, and when it is due for refresh (None: a login, never)."""
    with session_scope(factory) as db:
        mailbox = _connected(db, mailbox_id)
        server = repo.get_mail_server(db, mailbox_id)
        if server is not None:
            # A password account: its credential never expires here, it is only refused.
            return server_credential(services.box, mailbox, server), None
        expires_at, version = mailbox.token_expires_at, mailbox.token_version
        stored_access, stored_refresh = mailbox.access_token, mailbox.refresh_token
        provider = services.sign_in(mailbox.provider)
    margin = services.policy.refresh_ahead
    fresh_until = utcnow() + margin
    if stored_access and not force_refresh and expires_at and expires_at > fresh_until:
        return AccessToken(services.box.open(stored_access)), expires_at - margin
    if stored_refresh is None:
        error = AuthRevoked("No refresh token is stored for this mailbox.", code="no_refresh_token")
        require_reauthentication(factory, mailbox_id, error)
        raise error
    try:
        tokens = provider.refresh(services.box.open(stored_refresh))
    except (AuthRevoked, InsufficientScope) as error:
        require_reauthentication(factory, mailbox_id, error, expected_version=version)
        raise
    except ProviderError as error:
        record_passing_failure(factory, services, mailbox_id, error)
        raise
    token, expires = _save_refreshed(factory, services, mailbox_id, version, tokens)
    # An expiry not given: held for one HOLD at most, never kept on.
    return token, (expires - margin if expires else utcnow() + HeldCredential.HOLD)


def _save_refreshed(
    factory: sessionmaker[Session],
    services: ProviderServices,
    mailbox_id: int,
    version: int,
    tokens: TokenSet,
) -> tuple[AccessToken, datetime | None]:
    """The refreshed token saved (unless someone saved newer ones first: theirs are then
    used), and when it expires."""
    values: dict[str, object] = {
        "access_token": services.box.seal(tokens.access_token),
        "token_expires_at": tokens.expires_at,
        "transient_failures": 0,
        "first_transient_failure_at": None,
    }
    if tokens.refresh_token:
        values["refresh_token"] = services.box.seal(tokens.refresh_token)
    if tokens.scopes:
        values["scopes"] = " ".join(sorted(tokens.scopes))
    with session_scope(factory) as db:
        won = repo.save_tokens_if_unchanged(db, mailbox_id, version, values)
        mailbox = _existing(db, mailbox_id)
        if won:
            db.refresh(mailbox)
            record_event(db, mailbox, MailboxEventKind.REFRESHED, reason="Access token refreshed.")
            return AccessToken(tokens.access_token), tokens.expires_at
        # Someone else saved newer tokens first: theirs are the ones to use and keep.
        db.refresh(mailbox)
        if mailbox.status is not MailboxStatus.CONNECTED or mailbox.access_token is None:
            raise MailboxNotConnected(_not_connected_message(mailbox))
        return AccessToken(services.box.open(mailbox.access_token)), mailbox.token_expires_at


def require_reauthentication(
    factory: sessionmaker[Session],
    mailbox_id: int,
    error: ProviderError,
    *,
    expected_version: int | None = None,
) -> None:
    """A permanent failure: the user must reauthenticate (the change's subscribers pause its
    campaigns and email its owner). Ignored if newer tokens arrived."""
    with session_scope(factory) as db:
        mailbox = _existing(db, mailbox_id)
        if mailbox.status is not MailboxStatus.CONNECTED:
            return
        if expected_version is not None and mailbox.token_version != expected_version:
            return
        log.info("mailbox_reauth_required", mailbox_id=mailbox_id, code=error.code)
        transition(
            db,
            mailbox,
            MailboxStatus.REAUTH_REQUIRED,
            kind=MailboxEventKind.REAUTH_REQUIRED,
            reason=error.message,
            code=error.code,
        )


def record_passing_failure(
    factory: sessionmaker[Session],
    services: ProviderServices,
    mailbox_id: int,
    error: ProviderError,
) -> None:
    """Count a transient failure; only a long run of them asks the user to act."""
    policy = services.policy
    with session_scope(factory) as db:
        mailbox = _existing(db, mailbox_id)
        now = utcnow()
        mailbox.transient_failures += 1
        mailbox.first_transient_failure_at = mailbox.first_transient_failure_at or now
        record_event(db, mailbox, MailboxEventKind.FAILED, reason=error.message, code=error.code)
        lasted = now - mailbox.first_transient_failure_at
        if (
            mailbox.status is MailboxStatus.CONNECTED
            and mailbox.transient_failures >= policy.transient_failures_before_reauth
            and lasted >= policy.transient_period_before_reauth
        ):
            label = mailbox.provider.label
            transition(
                db,
                mailbox,
                MailboxStatus.REAUTH_REQUIRED,
                kind=MailboxEventKind.REAUTH_REQUIRED,
                code=error.code or "transient",
                reason=f"{label} has failed {mailbox.transient_failures} times in a row since "
                f"{mailbox.first_transient_failure_at:%Y-%m-%d %H:%M} UTC. Reauthenticate to "
                "check the connection.",
            )


def _connected(db: Session, mailbox_id: int) -> Mailbox:
    mailbox = _existing(db, mailbox_id)
    if mailbox.status is not MailboxStatus.CONNECTED:
        raise MailboxNotConnected(_not_connected_message(mailbox))
    return mailbox


def _existing(db: Session, mailbox_id: int) -> Mailbox:
    mailbox = repo.get_mailbox(db, mailbox_id)
    if mailbox is None:
        raise NotFound("No such email account.", code="unknown_mailbox")
    return mailbox


def _not_connected_message(mailbox: Mailbox) -> str:
    if mailbox.status is MailboxStatus.DISCONNECTED:
        return f"{mailbox.email} is disconnected. Link it again to use it."
    return f"{mailbox.email} needs reauthentication: {mailbox.status_reason}".strip()


def server_credential(box: TokenBox, mailbox: Mailbox, server: MailServer) -> ServerLogin:
    """The IMAP/SMTP login a provider call receives, with the password decrypted."""
    if server.secret is None:
        raise MailboxNotConnected(_not_connected_message(mailbox))
    return ServerLogin(
        email=mailbox.email,
        username=server.username,
        secret=box.open(server.secret),
        auth=AuthMethod(server.auth_method),
        smtp=Endpoint(server.smtp_host, server.smtp_port, Security(server.smtp_security)),
        imap=Endpoint(server.imap_host, server.imap_port, Security(server.imap_security)),
    )


def reencrypt_all(db: Session, box: TokenBox) -> int:
    """Re-encrypt every stored token and password under the newest key; returns how many."""
    changed = 0
    for mailbox in repo.all_mailboxes_with_tokens(db):
        for field in ("access_token", "refresh_token"):
            value = getattr(mailbox, field)
            if value:
                setattr(mailbox, field, box.rotate(value))
                changed += 1
    for server in repo.mail_servers_with_secrets(db):
        if server.secret:
            server.secret = box.rotate(server.secret)
            changed += 1
    for attempt in repo.live_link_attempts(db, utcnow()):
        attempt.code_verifier = box.rotate(attempt.code_verifier)
        changed += 1
        if attempt.pending_grant:
            attempt.pending_grant = box.rotate(attempt.pending_grant)
            changed += 1
    return changed
