"""Mailbox rules: link, reconnect, remove, settings, and every status transition with its event."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from sendwell.kit import events
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from sendwell.kit.headers import HEADER_FORBIDDEN
from sendwell.kit.secrets import hash_secret
from sendwell.kit.signals import dispatch_work
from sendwell.mailboxes import limits
from sendwell.mailboxes import repository as repo
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.models import (
    LinkAttempt,
    Mailbox,
    MailboxEvent,
    MailboxEventKind,
    MailboxStatus,
    User,
)
from sendwell.providers import oauth
from sendwell.providers.base import Grant, Identity, ProviderName, TokenSet
from sendwell.providers.discovery import DiscoveredProvider
from sendwell.providers.errors import ProviderError

ALLOWED = {
    MailboxStatus.CONNECTED: {
        MailboxStatus.CONNECTED,
        MailboxStatus.REAUTH_REQUIRED,
        MailboxStatus.DISCONNECTED,
    },
    MailboxStatus.REAUTH_REQUIRED: {
        MailboxStatus.CONNECTED,
        MailboxStatus.DISCONNECTED,
        MailboxStatus.REAUTH_REQUIRED,
    },
    MailboxStatus.DISCONNECTED: {MailboxStatus.CONNECTED},
}
# Connection changes that pause the mailbox's active campaigns, and the reason they show.
MAX_GAP_SECONDS = 86_400


class LinkRefused(Conflict):
    """The callback cannot be trusted or used (forged, replayed, expired, other browser)."""

    code = "link_refused"


@dataclass(frozen=True)
class Linked:
    mailbox: Mailbox
    reconnected: bool
    replaced: list[Mailbox]


@dataclass(frozen=True)
class NeedsConfirmation:
    attempt_id: int
    typed_email: str
    signed_in_email: str


def transition(
    db: Session,
    mailbox: Mailbox,
    to: MailboxStatus,
    *,
    kind: MailboxEventKind,
    reason: str = "",
    code: str = "",
    actor: User | None = None,
) -> None:
    """Move a mailbox to a status and record why; refuse what the state machine forbids."""
    if to not in ALLOWED[mailbox.status]:
        raise Conflict(
            f"A {mailbox.status.value} mailbox cannot become {to.value}.", code="illegal_transition"
        )
    previous = mailbox.status
    if to is not mailbox.status:
        mailbox.status_changed_at = utcnow()
    mailbox.status = to
    mailbox.status_reason = reason if to is not MailboxStatus.CONNECTED else ""
    mailbox.status_code = code if to is not MailboxStatus.CONNECTED else ""
    record_event(db, mailbox, kind, reason=reason, code=code, actor=actor)
    # Its webhook, and the pause of its campaigns when it broke: same transaction.
    events.publish(
        db,
        events.MailboxStatusChanged(
            mailbox=mailbox, kind=kind, previous=previous, reason=reason, code=code
        ),
    )


def record_event(
    db: Session,
    mailbox: Mailbox,
    kind: MailboxEventKind,
    *,
    reason: str = "",
    code: str = "",
    actor: User | None = None,
) -> None:
    db.add(
        MailboxEvent(
            mailbox_id=mailbox.id,
            kind=kind,
            reason=reason,
            provider_code=code,
            actor_id=actor.id if actor else None,
            at=utcnow(),
        )
    )


@dataclass(frozen=True)
class Attention:
    """An account of the user's that needs reauthentication, and what waits on it."""

    mailbox: Mailbox
    paused_campaigns: int


def accounts_needing_attention(db: Session, user: User) -> list[Attention]:
    """The user's own accounts that need reauthentication (for the Messaging banner)."""
    broken = [
        m for m in repo.owned_mailboxes(db, user.id) if m.status is MailboxStatus.REAUTH_REQUIRED
    ]
    counts = repo.paused_counts_by_mailbox(db, [m.id for m in broken])
    return [Attention(m, counts.get(m.id, 0)) for m in broken]


def visible_mailboxes(db: Session, user: User) -> list[Mailbox]:
    return repo.visible_mailboxes(db, user)


def get_mailbox(db: Session, user: User, mailbox_id: int) -> Mailbox:
    mailbox = repo.get_visible_mailbox(db, user, mailbox_id)
    if mailbox is None:
        raise NotFound("No such email account.", code="unknown_mailbox")
    return mailbox


def mailbox_history(db: Session, mailbox: Mailbox) -> list[MailboxEvent]:
    return repo.events(db, mailbox.id)


def choose_provider(
    services: ProviderServices, email: str, chosen: str = ""
) -> ProviderName | None:
    """The host for an address: the user's choice, else discovery; None means ask the user."""
    if chosen:
        try:
            return ProviderName(chosen)
        except ValueError:
            raise InvalidInput(
                "Choose Google, Microsoft or Other (IMAP/SMTP).", code="unknown_provider"
            ) from None
    found = services.discovery.discover(email)
    return None if found is DiscoveredProvider.UNKNOWN else ProviderName(found.value)


def start_link(
    db: Session,
    services: ProviderServices,
    *,
    user: User,
    email: str,
    provider_name: ProviderName,
    session_secret: str | None,
    delegation_id: int | None = None,
) -> str:
    """Record a one-time, expiring attempt bound to this browser; return the sign-in URL.

    ``delegation_id``: the account is linked to approve that request, which the user is then
    taken back to.
    """
    provider = services.sign_in(provider_name)
    now = utcnow()
    repo.delete_stale_link_attempts(db, now)
    state, verifier = oauth.new_state(), oauth.new_code_verifier()
    db.add(
        LinkAttempt(
            state_hash=hash_secret(state),
            session_hash=hash_secret(session_secret) if session_secret else "",
            user_id=user.id,
            provider=provider_name,
            typed_email=email,
            code_verifier=services.box.seal(verifier),
            created_at=now,
            expires_at=now + services.link_lifetime,
            delegation_id=delegation_id,
        )
    )
    db.flush()
    return provider.authorization_url(
        redirect_uri=services.redirect_uri(provider_name),
        state=state,
        code_verifier=verifier,
        login_hint=email,
    )


def take_link_attempt(
    db: Session, *, user: User, provider_name: str, state: str, session_secret: str | None
) -> LinkAttempt:
    """The attempt a callback belongs to, checked and spent; anything doubtful is refused."""
    attempt = repo.get_link_attempt(db, hash_secret(state)) if state else None
    problem = _attempt_problem(attempt, user, provider_name, session_secret)
    if problem or attempt is None:
        raise LinkRefused(problem or "This sign-in link is not valid.")
    attempt.used_at = utcnow()
    db.flush()
    return attempt


def _attempt_problem(
    attempt: LinkAttempt | None, user: User, provider_name: str, session_secret: str | None
) -> str:
    if attempt is None:
        return "This sign-in answer does not match any link Sendwell started. Start again."
    if attempt.used_at is not None:
        return "This sign-in answer was already used. Start again from Link an email account."
    if attempt.expires_at <= utcnow():
        return "This sign-in took too long and expired. Start again."
    if attempt.provider != provider_name or attempt.user_id != user.id:
        return "This sign-in answer belongs to another link. Start again."
    if attempt.session_hash and attempt.session_hash != hash_secret(session_secret or ""):
        return "This sign-in was started in another browser session. Start again here."
    return ""


def complete_link(
    db: Session,
    services: ProviderServices,
    *,
    user: User,
    attempt: LinkAttempt,
    params: dict[str, str],
) -> Linked | NeedsConfirmation:
    """Exchange the callback for a grant; a different address than typed waits for the user."""
    provider = services.sign_in(attempt.provider)
    grant = provider.complete_authorization(
        callback_params=params,
        redirect_uri=services.redirect_uri(attempt.provider),
        code_verifier=services.box.open(attempt.code_verifier),
    )
    if grant.identity.email != attempt.typed_email.lower():
        attempt.pending_grant = services.box.seal(_grant_to_json(grant))
        db.flush()
        return NeedsConfirmation(attempt.id, attempt.typed_email, grant.identity.email)
    return connect_grant(db, services, user=user, provider_name=attempt.provider, grant=grant)


def confirm_link(db: Session, services: ProviderServices, *, user: User, attempt_id: int) -> Linked:
    attempt = repo.get_link_attempt_by_id(db, attempt_id)
    if attempt is None or attempt.user_id != user.id or attempt.pending_grant is None:
        raise LinkRefused("There is no sign-in waiting for your confirmation.")
    if attempt.expires_at <= utcnow():
        attempt.pending_grant = None
        raise LinkRefused("This sign-in waited too long for your answer and expired. Start again.")
    grant = _grant_from_json(services.box.open(attempt.pending_grant))
    attempt.pending_grant = None
    return connect_grant(db, services, user=user, provider_name=attempt.provider, grant=grant)


def discard_pending_link(
    db: Session, services: ProviderServices, *, user: User, attempt_id: int
) -> None:
    """Forget a grant the user did not want, revoking it where the host allows."""
    attempt = repo.get_link_attempt_by_id(db, attempt_id)
    if attempt is None or attempt.user_id != user.id or attempt.pending_grant is None:
        raise LinkRefused("There is no sign-in waiting for your confirmation.")
    grant = _grant_from_json(services.box.open(attempt.pending_grant))
    attempt.pending_grant = None
    # Google's revocation ends every grant the user gave our client, not just this one: when
    # the account is already linked here, revoking would disconnect that mailbox too, so the
    # unwanted grant is only forgotten (the user can remove it in their Google Account).
    linked = repo.get_by_identity(db, attempt.provider, grant.identity.subject)
    if linked is not None and linked.status is not MailboxStatus.DISCONNECTED:
        return
    # Nothing was saved; a grant that cannot be revoked now expires at the host on its own.
    with contextlib.suppress(ProviderError):
        services.sign_in(attempt.provider).revoke(
            grant.tokens.refresh_token or grant.tokens.access_token
        )


def connect_grant(
    db: Session,
    services: ProviderServices,
    *,
    user: User,
    provider_name: ProviderName,
    grant: Grant,
) -> Linked:
    """Save a grant: the same account (provider + subject) keeps its id, campaigns, history."""
    identity = grant.identity
    mailbox = repo.get_by_identity(db, provider_name, identity.subject)
    check_may_relink(mailbox, user, identity.email)
    replaced = _retire_recreated(db, user, provider_name, identity)
    reconnected = mailbox is not None
    if mailbox is None:
        mailbox = Mailbox(
            workspace_id=user.workspace_id,
            owner_id=user.id,
            provider=provider_name,
            subject=identity.subject,
            email=identity.email,
            status=MailboxStatus.DISCONNECTED,
            display_name=identity.display_name or user.name,
        )
        db.add(mailbox)
        db.flush()
    was_connected = mailbox.status is not MailboxStatus.DISCONNECTED
    mailbox.email = identity.email
    store_tokens(services, mailbox, grant.tokens, keep_refresh_token=False)
    mailbox.transient_failures = 0
    mailbox.first_transient_failure_at = None
    kind = MailboxEventKind.REAUTHENTICATED if was_connected else MailboxEventKind.CONNECTED
    transition(
        db,
        mailbox,
        MailboxStatus.CONNECTED,
        kind=kind,
        actor=user,
        reason=f"Signed in with {provider_name.label} as {identity.email}.",
    )
    db.flush()
    dispatch_work.request(db)
    return Linked(mailbox, reconnected, replaced)


def check_may_relink(mailbox: Mailbox | None, user: User, email: str) -> None:
    """An existing account is restored only for its owner, or an admin of its workspace."""
    if mailbox is not None and mailbox.workspace_id != user.workspace_id:
        raise Forbidden("This mailbox is linked to another Sendwell workspace.")
    if mailbox is not None and mailbox.owner_id != user.id and not user.is_admin:
        raise Forbidden(f"{email} is already linked by another user of this workspace.")


def _retire_recreated(
    db: Session, user: User, provider_name: ProviderName, identity: Identity
) -> list[Mailbox]:
    """Same address, different subject: the old mailbox was deleted at the host."""
    retired = repo.others_with_address(
        db, user.workspace_id, provider_name, identity.email, identity.subject
    )
    for old in retired:
        if old.status is not MailboxStatus.DISCONNECTED:
            wipe_tokens(old)
            transition(
                db,
                old,
                MailboxStatus.DISCONNECTED,
                kind=MailboxEventKind.DISCONNECTED,
                actor=user,
                reason=f"{provider_name.label} now reports a "
                f"different account for {identity.email}; it was re-created.",
            )
    return retired


def store_tokens(
    services: ProviderServices, mailbox: Mailbox, tokens: TokenSet, *, keep_refresh_token: bool
) -> None:
    mailbox.access_token = services.box.seal(tokens.access_token)
    if tokens.refresh_token or not keep_refresh_token:
        mailbox.refresh_token = (
            services.box.seal(tokens.refresh_token) if tokens.refresh_token else None
        )
    mailbox.token_expires_at = tokens.expires_at
    mailbox.scopes = " ".join(sorted(tokens.scopes)) or mailbox.scopes
    mailbox.token_version += 1


def wipe_tokens(mailbox: Mailbox) -> None:
    mailbox.access_token = None
    mailbox.refresh_token = None
    mailbox.token_expires_at = None
    mailbox.token_version += 1


def disconnect(db: Session, services: ProviderServices, *, user: User, mailbox_id: int) -> Mailbox:
    """Remove Account: revoke at the host where it can, delete tokens, keep the history."""
    mailbox = get_mailbox(db, user, mailbox_id)
    if mailbox.status is MailboxStatus.DISCONNECTED:
        return mailbox
    revoked_note = _revoke_quietly(services, mailbox)
    wipe_tokens(mailbox)
    server = repo.get_mail_server(db, mailbox.id)
    if server is not None:
        server.secret = None
        revoked_note = "The stored password was deleted."
    transition(
        db,
        mailbox,
        MailboxStatus.DISCONNECTED,
        kind=MailboxEventKind.DISCONNECTED,
        actor=user,
        reason=f"Removed by {user.display_name}. {revoked_note}".strip(),
    )
    return mailbox


def _revoke_quietly(services: ProviderServices, mailbox: Mailbox) -> str:
    token = mailbox.refresh_token or mailbox.access_token
    label = mailbox.provider.label
    if token is None:
        return ""
    try:
        revoked = services.sign_in(mailbox.provider).revoke(services.box.open(token))
    except (ProviderError, InvalidInput):
        return f"{label} could not be reached to revoke access; the tokens were deleted here."
    if not revoked:
        return (
            f"{label} offers no way to revoke access from here; remove Sendwell in your "
            "account's app settings if you want it gone there too."
        )
    return f"Access was revoked at {label}."


def update_settings(
    db: Session,
    *,
    user: User,
    mailbox_id: int,
    daily_cap: int | None = None,
    min_gap_seconds: int | None = None,
    display_name: str | None = None,
    signature: str | None = None,
    low_gap_confirmed: bool = False,
) -> Mailbox:
    """Change sending limits and sender details, each checked; nothing saved if one is wrong.

    The daily limit is capped by the host's documented limit for the account type; a new gap
    below the guidance is kept only when `low_gap_confirmed` (mailboxes/limits.py).
    """
    mailbox = get_mailbox(db, user, mailbox_id)
    if daily_cap is not None:
        limits.check_daily_cap(limits.limits_for(mailbox.provider, mailbox.email), daily_cap)
    if min_gap_seconds is not None and not 0 <= min_gap_seconds <= MAX_GAP_SECONDS:
        raise InvalidInput(
            "The gap between emails must be between 0 seconds and 24 hours.", code="invalid_min_gap"
        )
    if (
        min_gap_seconds is not None
        and min_gap_seconds != mailbox.min_gap_seconds
        and limits.low_gap_warning(min_gap_seconds)
        and not low_gap_confirmed
    ):
        raise limits.LowGapNotConfirmed(limits.low_gap_warning(min_gap_seconds))
    if display_name is not None and (
        len(display_name) > 200 or any(c in display_name for c in HEADER_FORBIDDEN)
    ):
        raise InvalidInput(
            "The display name must be one line of at most 200 characters.",
            code="invalid_display_name",
        )
    if signature is not None and len(signature) > 5000:
        raise InvalidInput("Keep the signature under 5,000 characters.", code="invalid_signature")
    changes = {
        key: value
        for key, value in {
            "daily_cap": daily_cap,
            "min_gap_seconds": min_gap_seconds,
            "display_name": display_name.strip() if display_name is not None else None,
            "signature": signature,
        }.items()
        if value is not None and getattr(mailbox, key) != value
    }
    for key, value in changes.items():
        setattr(mailbox, key, value)
    if changes:
        record_event(
            db,
            mailbox,
            MailboxEventKind.SETTINGS_CHANGED,
            actor=user,
            reason=_changed_words(list(changes)),
        )
    return mailbox


SETTING_WORDS = {
    "daily_cap": "the daily limit",
    "min_gap_seconds": "the minimum gap between emails",
    "display_name": "the display name",
    "signature": "the signature",
}


def _changed_words(keys: list[str]) -> str:
    """E.g. "Changed the daily limit and the minimum gap between emails." """
    words = [SETTING_WORDS.get(key, key.replace("_", " ")) for key in keys]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"Changed {listed}."


def _grant_to_json(grant: Grant) -> str:
    tokens, identity = grant.tokens, grant.identity
    return json.dumps(
        {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at.isoformat(),
            "scopes": sorted(tokens.scopes),
            "subject": identity.subject,
            "email": identity.email,
            "name": identity.display_name,
        }
    )


def _grant_from_json(raw: str) -> Grant:
    data = json.loads(raw)
    return Grant(
        tokens=TokenSet(
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
            expires_at=datetime.fromisoformat(data["expires_at"]),
            scopes=frozenset(data["scopes"]),
        ),
        identity=Identity(subject=data["subject"], email=data["email"], display_name=data["name"]),
    )
