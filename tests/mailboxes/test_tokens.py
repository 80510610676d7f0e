"""Token upkeep against the real database and the sandbox over real HTTP.

What an operator or user would notice: tokens are unreadable at rest, key rotation keeps every
account working, refreshes happen when (and only when) they are due, rotated refresh tokens are
never lost, dead grants ask the user to reauthenticate at once, passing failures only after a
long run, and the health check finds dead grants before a send does.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.kit.clock import utcnow
from sendwell.kit.tokenbox import TokenBox, TokenBoxError
from sendwell.mailboxes import repository
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tasks import check_connections
from sendwell.mailboxes.tokens import (
    HeldCredential,
    HeldCredentials,
    MailboxNotConnected,
    fresh_credential,
    reencrypt_all,
    with_credential,
)
from sendwell.models import LinkAttempt, Mailbox, MailboxEvent, MailboxEventKind, MailboxStatus
from sendwell.providers.base import ProviderName
from sendwell.providers.credentials import AccessToken, Credential
from sendwell.providers.errors import AuthRevoked, Transient
from sendwell.providers.registry import ProviderRegistry, build_registry
from tests.conftest import csrf_from
from tests.mailboxes.conftest import finish_at_provider, link, start_link
from tests.sandbox_support import Sandbox

GOOGLE = "ada@gmail.test"
MICROSOFT = "ada@contoso.outlook.test"
DEAD_SANDBOX = "http://127.0.0.1:9/sandbox"


def session_factory(client: TestClient) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = client.app.state.session_factory  # type: ignore[attr-defined]
    return factory


def fresh_access_token(
    factory: sessionmaker[Session],
    services: ProviderServices,
    mailbox_id: int,
    *,
    force_refresh: bool = False,
) -> str:
    """The bearer token of an OAuth mailbox's fresh credential."""
    credential = fresh_credential(factory, services, mailbox_id, force_refresh=force_refresh)
    assert isinstance(credential, AccessToken)
    return credential.bearer


def linked(client: TestClient, db: Session, email: str) -> Mailbox:
    response = link(client, email)
    assert response.headers["location"] == "/messaging/settings", response.text
    return mailbox_by_email(db, email)


def mailbox_by_email(db: Session, email: str) -> Mailbox:
    db.expire_all()
    return db.scalars(select(Mailbox).where(Mailbox.email == email)).one()


def reload(db: Session, mailbox_id: int) -> Mailbox:
    db.expire_all()
    mailbox = db.get(Mailbox, mailbox_id)
    assert mailbox is not None
    return mailbox


def event_kinds(db: Session, mailbox_id: int) -> list[str]:
    db.expire_all()
    events = db.scalars(
        select(MailboxEvent).where(MailboxEvent.mailbox_id == mailbox_id).order_by(MailboxEvent.id)
    )
    return [event.kind.value for event in events]


def count_events(db: Session, mailbox_id: int, kind: MailboxEventKind) -> int:
    db.expire_all()
    return int(
        db.scalar(
            select(func.count())
            .select_from(MailboxEvent)
            .where(MailboxEvent.mailbox_id == mailbox_id, MailboxEvent.kind == kind)
        )
        or 0
    )


def expire_everywhere(db: Session, sandbox: Sandbox, mailbox: Mailbox) -> None:
    """The access token is dead at the host and Sendwell knows it: the next use must refresh."""
    sandbox.admin("expire-tokens", {"mailbox": mailbox.email})
    mailbox.token_expires_at = utcnow() - timedelta(minutes=1)
    db.commit()


def issued_tokens(sandbox: Sandbox) -> int:
    with sandbox.state.lock:
        return len(sandbox.state.tokens)


def stored_refresh_token(db: Session, services: ProviderServices, mailbox_id: int) -> str:
    value = reload(db, mailbox_id).refresh_token
    assert value is not None
    return services.box.open(value)


def stored_access_token(db: Session, services: ProviderServices, mailbox_id: int) -> str:
    value = reload(db, mailbox_id).access_token
    assert value is not None
    return services.box.open(value)


@pytest.fixture
def dead_connections(settings: Settings, services: ProviderServices) -> Iterator[ProviderServices]:
    """The same Sendwell, but every provider call goes to a port where nothing listens.

    Escalation is after 3 failures over at least an hour.
    """
    dead_settings = settings.model_copy(update={"sandbox_url": DEAD_SANDBOX})
    with httpx.Client(timeout=5) as http:
        yield dataclasses.replace(
            services,
            registry=build_registry(dead_settings, http),
            policy=dataclasses.replace(
                services.policy,
                transient_failures_before_reauth=3,
                transient_period_before_reauth=timedelta(hours=1),
            ),
        )


# --- Encryption at rest ------------------------------------------------------------------------


def test_tokens_never_appear_in_plaintext_in_the_database(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    linked(client, db, GOOGLE)
    linked(client, db, MICROSOFT)
    # A grant for another address than the one typed waits, encrypted, in link_attempts.
    waiting = finish_at_provider(client, start_link(client, "ada@gmail.test"), "bob@gmail.test")
    assert "You signed in as bob@gmail.test" in waiting.text
    with sandbox.state.lock:
        issued = [token.value for token in sandbox.state.tokens.values()]
    assert len(issued) >= 6  # access + refresh for each of the three grants

    cells = [
        str(value)
        for table in ("mailboxes", "link_attempts", "mailbox_events")
        for row in db.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608
        for value in row
        if value is not None
    ]
    leaked = [token for token in issued if any(token in cell for cell in cells)]
    assert leaked == []

    db.expire_all()
    for mailbox in db.scalars(select(Mailbox)):
        assert mailbox.access_token
        assert mailbox.refresh_token
        access = services.box.open(mailbox.access_token)
        refresh = services.box.open(mailbox.refresh_token)
        assert sandbox.state.live_token(access, "access") is not None
        assert sandbox.state.live_token(refresh, "refresh") is not None
    pending = db.scalars(select(LinkAttempt).where(LinkAttempt.pending_grant.is_not(None))).one()
    assert pending.pending_grant is not None
    grant = json.loads(services.box.open(pending.pending_grant))
    assert grant["email"] == "bob@gmail.test"
    assert sandbox.state.live_token(grant["access_token"], "access") is not None
    assert sandbox.state.live_token(grant["refresh_token"], "refresh") is not None


# --- Key rotation ------------------------------------------------------------------------------


def test_key_rotation_keeps_every_account_and_link_in_flight_working(
    client: TestClient,
    db: Session,
    sandbox: Sandbox,
    settings: Settings,
    services: ProviderServices,
) -> None:
    accounts = [linked(client, db, GOOGLE), linked(client, db, MICROSOFT)]
    in_flight = start_link(client, "cy@gmail.test")
    (old,) = settings.token_key_list
    new = Fernet.generate_key().decode()
    new_only, old_only = TokenBox([new]), TokenBox([old])

    for mailbox in accounts:
        for value in (mailbox.access_token, mailbox.refresh_token):
            assert value is not None
            with pytest.raises(TokenBoxError):
                new_only.open(value)

    live_attempts = db.scalar(
        select(func.count()).select_from(LinkAttempt).where(LinkAttempt.expires_at >= utcnow())
    )
    changed = reencrypt_all(db, TokenBox([new, old]))
    db.commit()
    assert changed == 2 * len(accounts) + (live_attempts or 0)

    for mailbox in accounts:
        rotated = reload(db, mailbox.id)
        for value in (rotated.access_token, rotated.refresh_token):
            assert value is not None
            new_only.open(value)
            with pytest.raises(TokenBoxError):
                old_only.open(value)

    rotated_conn = dataclasses.replace(services, box=new_only)
    factory = session_factory(client)
    for mailbox in accounts:
        token = fresh_access_token(factory, rotated_conn, mailbox.id, force_refresh=True)
        assert sandbox.state.live_token(token, "access") is not None
    report = check_connections(factory, rotated_conn)
    assert (report.checked, report.healthy, report.failed) == (2, 2, 0)
    assert all(reload(db, m.id).status is MailboxStatus.CONNECTED for m in accounts)

    # The server restarts with the old key removed: a sign-in started before still completes.
    services.box = new_only
    done = finish_at_provider(client, in_flight, "cy@gmail.test")
    assert done.headers["location"] == "/messaging/settings", done.text
    assert mailbox_by_email(db, "cy@gmail.test").status is MailboxStatus.CONNECTED


def test_key_rotation_re_encrypts_a_grant_waiting_for_confirmation(
    client: TestClient,
    db: Session,
    sandbox: Sandbox,
    settings: Settings,
    services: ProviderServices,
) -> None:
    waiting = finish_at_provider(client, start_link(client, "ada@gmail.test"), "bob@gmail.test")
    assert "You signed in as bob@gmail.test" in waiting.text
    (old,) = settings.token_key_list
    new = Fernet.generate_key().decode()
    new_only = TokenBox([new])

    reencrypt_all(db, TokenBox([new, old]))
    db.commit()

    db.expire_all()
    attempt = db.scalars(select(LinkAttempt)).one()
    assert attempt.pending_grant is not None
    grant = json.loads(new_only.open(attempt.pending_grant))
    assert grant["email"] == "bob@gmail.test"
    new_only.open(attempt.code_verifier)


def test_key_rotation_counts_every_value_it_re_encrypts(
    client: TestClient, db: Session, settings: Settings
) -> None:
    waiting = finish_at_provider(client, start_link(client, "ada@gmail.test"), "bob@gmail.test")
    assert "You signed in as bob@gmail.test" in waiting.text
    (old,) = settings.token_key_list

    changed = reencrypt_all(db, TokenBox([Fernet.generate_key().decode(), old]))

    assert changed == 2  # the attempt's code verifier and its waiting grant


# --- Refresh ahead of expiry -------------------------------------------------------------------


@pytest.mark.parametrize("email", [GOOGLE, MICROSOFT])
def test_a_token_with_time_left_is_used_without_asking_the_provider(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices, email: str
) -> None:
    mailbox = linked(client, db, email)
    issued_before = issued_tokens(sandbox)
    refresh_tokens_before = list(sandbox.state.issued_refresh_tokens)

    token = fresh_access_token(session_factory(client), services, mailbox.id)

    assert token == stored_access_token(db, services, mailbox.id)
    assert sandbox.state.live_token(token, "access") is not None
    assert issued_tokens(sandbox) == issued_before
    assert sandbox.state.issued_refresh_tokens == refresh_tokens_before
    assert event_kinds(db, mailbox.id) == ["connected"]


@pytest.mark.parametrize("email", [GOOGLE, MICROSOFT])
def test_an_expired_token_is_refreshed_and_the_refresh_recorded(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices, email: str
) -> None:
    mailbox = linked(client, db, email)
    old_token = stored_access_token(db, services, mailbox.id)
    expire_everywhere(db, sandbox, mailbox)
    issued_before = issued_tokens(sandbox)

    token = fresh_access_token(session_factory(client), services, mailbox.id)

    assert token != old_token
    assert sandbox.state.live_token(token, "access") is not None
    assert issued_tokens(sandbox) > issued_before
    after = reload(db, mailbox.id)
    assert after.status is MailboxStatus.CONNECTED
    assert after.token_expires_at is not None
    assert after.token_expires_at > utcnow()
    assert stored_access_token(db, services, mailbox.id) == token
    assert event_kinds(db, mailbox.id) == ["connected", "refreshed"]


def test_a_token_about_to_expire_is_refreshed_ahead(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    mailbox = linked(client, db, GOOGLE)
    old_token = stored_access_token(db, services, mailbox.id)
    mailbox.token_expires_at = utcnow() + services.policy.refresh_ahead / 2
    db.commit()

    token = fresh_access_token(session_factory(client), services, mailbox.id)

    assert token != old_token
    assert sandbox.state.live_token(token, "access") is not None
    assert event_kinds(db, mailbox.id) == ["connected", "refreshed"]


def test_a_held_token_is_read_again_before_it_is_due_for_refresh_even_while_confirmed(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    """A worker holds a mailbox's token between sends, and each claim confirms the mailbox's
    tokens are unchanged; the token is still refreshed ahead of its expiry, never used late."""
    mailbox = linked(client, db, GOOGLE)
    mailbox.token_expires_at = utcnow() + services.policy.refresh_ahead + timedelta(seconds=1)
    db.commit()
    held = HeldCredentials(session_factory(client), services)
    held.note(mailbox)
    first = held.of(mailbox.id).call(bearer)
    assert first == stored_access_token(db, services, mailbox.id), "not refreshed yet"

    time.sleep(1.2)
    held.note(reload(db, mailbox.id))  # unchanged: confirmed
    second = held.of(mailbox.id).call(bearer)

    assert second != first
    assert sandbox.state.live_token(second, "access") is not None
    assert event_kinds(db, mailbox.id) == ["connected", "refreshed"]


def test_a_held_token_is_read_again_only_when_its_tokens_may_have_changed(
    client: TestClient,
    db: Session,
    services: ProviderServices,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held past HOLD, a credential is read again unless a claim just saw its mailbox's
    tokens unchanged; when they changed (another worker refreshed them), the new ones are
    used at once."""
    monkeypatch.setattr(HeldCredential, "HOLD", timedelta(seconds=0.3))
    mailbox = linked(client, db, GOOGLE)
    factory = session_factory(client)
    reads = 0

    def count_reads(*args: object) -> None:
        nonlocal reads
        reads += "FROM mailboxes" in str(args[2])

    engine = factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", count_reads)
    try:
        held = HeldCredentials(factory, services)
        held.note(mailbox)
        first = held.of(mailbox.id).call(bearer)
        assert reads == 1
        time.sleep(0.4)
        held.of(mailbox.id).call(bearer)
        assert reads == 2, "held past HOLD unconfirmed: read again"
        time.sleep(0.4)
        held.note(mailbox)
        assert held.of(mailbox.id).call(bearer) == first
        assert reads == 2, "confirmed unchanged: not read again"

        time.sleep(0.4)
        held.sweep()  # past HOLD unconfirmed, but its token is far from due for refresh
        held.note(mailbox)
        assert held.of(mailbox.id).call(bearer) == first
        assert reads == 2, "kept through the sweep, confirmed unchanged: not read again"

        monkeypatch.setattr(HeldCredentials, "KEEP_UNUSED", timedelta(seconds=0.3))
        time.sleep(0.4)
        held.sweep()  # not used for KEEP_UNUSED: dropped
        held.note(mailbox)
        assert held.of(mailbox.id).call(bearer) == first
        assert reads == 3, "dropped unused: read again"

        refreshed = fresh_access_token(factory, services, mailbox.id, force_refresh=True)
        reads = 0
        held.note(reload(db, mailbox.id))
        assert held.of(mailbox.id).call(bearer) == refreshed
        assert reads >= 1
    finally:
        event.remove(engine, "before_cursor_execute", count_reads)


def bearer(credential: Credential) -> str:
    assert isinstance(credential, AccessToken)
    return credential.bearer


# --- Refresh-token rotation --------------------------------------------------------------------


def test_microsoft_rotated_refresh_token_is_saved(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    mailbox = linked(client, db, MICROSOFT)
    original = stored_refresh_token(db, services, mailbox.id)
    factory = session_factory(client)

    fresh_access_token(factory, services, mailbox.id, force_refresh=True)

    stored = stored_refresh_token(db, services, mailbox.id)
    assert stored != original
    assert stored == sandbox.state.issued_refresh_tokens[-1]
    # And the saved one is the one used next time.
    fresh_access_token(factory, services, mailbox.id, force_refresh=True)
    assert (
        stored_refresh_token(db, services, mailbox.id) == (sandbox.state.issued_refresh_tokens[-1])
    )
    assert len(sandbox.state.issued_refresh_tokens) == 3


def test_google_keeps_its_original_refresh_token(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    mailbox = linked(client, db, GOOGLE)
    original = stored_refresh_token(db, services, mailbox.id)
    factory = session_factory(client)

    for _ in range(2):
        token = fresh_access_token(factory, services, mailbox.id, force_refresh=True)
        assert sandbox.state.live_token(token, "access") is not None

    assert sandbox.state.issued_refresh_tokens == [original]
    assert stored_refresh_token(db, services, mailbox.id) == original
    assert reload(db, mailbox.id).status is MailboxStatus.CONNECTED


# --- Concurrency -------------------------------------------------------------------------------


def test_concurrent_refreshes_never_lose_a_rotated_token(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    mailbox = linked(client, db, MICROSOFT)
    version_before = mailbox.token_version
    refreshed_before = count_events(db, mailbox.id, MailboxEventKind.REFRESHED)
    factory = session_factory(client)
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def refresh() -> None:
        try:
            barrier.wait(timeout=30)
            tokens.append(fresh_access_token(factory, services, mailbox.id, force_refresh=True))
        except BaseException as error:  # reported below; a thread must not die silently
            errors.append(error)

    workers = [threading.Thread(target=refresh) for _ in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert errors == []
    assert len(tokens) == threads_count
    assert all(sandbox.state.live_token(token, "access") is not None for token in tokens)
    after = reload(db, mailbox.id)
    assert after.status is MailboxStatus.CONNECTED
    stored = stored_refresh_token(db, services, mailbox.id)
    assert stored in sandbox.state.issued_refresh_tokens[1:]
    wins = count_events(db, mailbox.id, MailboxEventKind.REFRESHED) - refreshed_before
    assert wins >= 1
    assert after.token_version - version_before == wins
    # The token that survived the race still works at Microsoft.
    token = fresh_access_token(factory, services, mailbox.id, force_refresh=True)
    assert sandbox.state.live_token(token, "access") is not None
    assert (
        stored_refresh_token(db, services, mailbox.id) == (sandbox.state.issued_refresh_tokens[-1])
    )


def test_compare_and_swap_refuses_a_stale_version(
    client: TestClient, db: Session, services: ProviderServices
) -> None:
    mailbox = linked(client, db, MICROSOFT)
    version = mailbox.token_version
    before = (mailbox.access_token, mailbox.refresh_token, mailbox.token_version)

    stale = repository.save_tokens_if_unchanged(
        db, mailbox.id, version - 1, {"access_token": services.box.seal("stale")}
    )
    db.commit()

    assert stale is False
    after = reload(db, mailbox.id)
    assert (after.access_token, after.refresh_token, after.token_version) == before

    current = repository.save_tokens_if_unchanged(
        db, mailbox.id, version, {"access_token": services.box.seal("current")}
    )
    db.commit()
    assert current is True
    assert reload(db, mailbox.id).token_version == version + 1
    assert stored_access_token(db, services, mailbox.id) == "current"


# --- Permanent failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "code"),
    [
        (GOOGLE, "invalid_grant"),
        (MICROSOFT, "AADSTS70008"),
        (MICROSOFT, "AADSTS50173"),
        (MICROSOFT, "AADSTS65001"),
    ],
)
def test_a_dead_grant_asks_for_reauthentication_at_once(
    client: TestClient,
    db: Session,
    sandbox: Sandbox,
    services: ProviderServices,
    email: str,
    code: str,
) -> None:
    mailbox = linked(client, db, email)
    expire_everywhere(db, sandbox, mailbox)
    sandbox.admin("token-errors", {"mailbox": email, "code": code})
    factory = session_factory(client)

    with pytest.raises(AuthRevoked) as raised:
        fresh_access_token(factory, services, mailbox.id)
    assert raised.value.code == code

    after = reload(db, mailbox.id)
    assert after.status is MailboxStatus.REAUTH_REQUIRED
    assert after.status_code == code
    assert after.status_reason
    assert after.transient_failures == 0
    db.expire_all()
    (event,) = db.scalars(
        select(MailboxEvent).where(
            MailboxEvent.mailbox_id == mailbox.id,
            MailboxEvent.kind == MailboxEventKind.REAUTH_REQUIRED,
        )
    )
    assert event.provider_code == code
    assert "failed" not in event_kinds(db, mailbox.id)
    with pytest.raises(MailboxNotConnected):
        fresh_access_token(factory, services, mailbox.id)
    assert reload(db, mailbox.id).status is MailboxStatus.REAUTH_REQUIRED


# --- A 401 is not a revocation -----------------------------------------------------------------


@pytest.mark.parametrize(("email", "provider"), [(GOOGLE, "google"), (MICROSOFT, "microsoft")])
def test_a_401_with_a_working_refresh_token_is_not_a_revocation(
    client: TestClient,
    db: Session,
    sandbox: Sandbox,
    services: ProviderServices,
    email: str,
    provider: str,
) -> None:
    mailbox = linked(client, db, email)
    sandbox.admin("faults", {"mailbox": email, "fault": "unauthorized"})
    issued_before = issued_tokens(sandbox)

    with_credential(
        session_factory(client), services, mailbox.id, services.mail_host(provider).probe
    )

    after = reload(db, mailbox.id)
    assert after.status is MailboxStatus.CONNECTED
    assert after.status_code == ""
    assert event_kinds(db, mailbox.id) == ["connected", "refreshed"]
    assert issued_tokens(sandbox) > issued_before


@pytest.mark.parametrize(("email", "provider"), [(GOOGLE, "google"), (MICROSOFT, "microsoft")])
def test_a_401_after_the_grant_was_revoked_asks_for_reauthentication(
    client: TestClient,
    db: Session,
    sandbox: Sandbox,
    services: ProviderServices,
    email: str,
    provider: str,
) -> None:
    mailbox = linked(client, db, email)
    sandbox.admin("revoke", {"mailbox": email})

    with pytest.raises(AuthRevoked):
        with_credential(
            session_factory(client), services, mailbox.id, services.mail_host(provider).probe
        )

    after = reload(db, mailbox.id)
    assert after.status is MailboxStatus.REAUTH_REQUIRED
    assert after.status_code
    assert event_kinds(db, mailbox.id)[-1] == "reauth_required"


# --- Passing failures --------------------------------------------------------------------------


def test_passing_failures_escalate_only_after_repeated_failure_over_time(
    client: TestClient,
    db: Session,
    sandbox: Sandbox,
    services: ProviderServices,
    dead_connections: ProviderServices,
) -> None:
    mailbox = linked(client, db, GOOGLE)
    expire_everywhere(db, sandbox, mailbox)
    factory = session_factory(client)

    for attempt in range(1, 4):
        with pytest.raises(Transient):
            fresh_access_token(factory, dead_connections, mailbox.id)
        after = reload(db, mailbox.id)
        assert after.status is MailboxStatus.CONNECTED
        assert after.transient_failures == attempt
    assert event_kinds(db, mailbox.id) == ["connected", "failed", "failed", "failed"]

    after = reload(db, mailbox.id)
    assert after.first_transient_failure_at is not None
    after.first_transient_failure_at -= timedelta(hours=2)
    db.commit()
    with pytest.raises(Transient):
        fresh_access_token(factory, dead_connections, mailbox.id)

    escalated = reload(db, mailbox.id)
    assert escalated.status is MailboxStatus.REAUTH_REQUIRED
    assert escalated.status_code == "connect"
    assert "failed 4 times" in escalated.status_reason
    assert event_kinds(db, mailbox.id)[-2:] == ["failed", "reauth_required"]
    with pytest.raises(MailboxNotConnected):
        fresh_access_token(factory, services, mailbox.id)


def test_a_success_resets_the_passing_failure_count(
    client: TestClient,
    db: Session,
    sandbox: Sandbox,
    services: ProviderServices,
    dead_connections: ProviderServices,
) -> None:
    mailbox = linked(client, db, MICROSOFT)
    expire_everywhere(db, sandbox, mailbox)
    factory = session_factory(client)
    for _ in range(2):
        with pytest.raises(Transient):
            fresh_access_token(factory, dead_connections, mailbox.id)
    failing = reload(db, mailbox.id)
    assert failing.first_transient_failure_at is not None
    failing.first_transient_failure_at -= timedelta(hours=2)
    db.commit()

    token = fresh_access_token(factory, services, mailbox.id)
    assert sandbox.state.live_token(token, "access") is not None
    recovered = reload(db, mailbox.id)
    assert (recovered.transient_failures, recovered.first_transient_failure_at) == (0, None)

    # The count starts over: three more failures within a minute do not escalate.
    expire_everywhere(db, sandbox, recovered)
    for _ in range(3):
        with pytest.raises(Transient):
            fresh_access_token(factory, dead_connections, mailbox.id)
    after = reload(db, mailbox.id)
    assert after.status is MailboxStatus.CONNECTED
    assert after.transient_failures == 3


# --- Health check ------------------------------------------------------------------------------


def test_health_check_finds_revoked_grants_and_leaves_the_rest_alone(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    fine = linked(client, db, GOOGLE)
    revoked = linked(client, db, "bob@gmail.test")
    removed = linked(client, db, MICROSOFT)
    client.post(
        f"/mailboxes/{removed.id}/disconnect",
        data={"csrftoken": csrf_from(client.get(f"/mailboxes/{removed.id}").text)},
    )
    assert reload(db, removed.id).status is MailboxStatus.DISCONNECTED
    sandbox.admin("revoke", {"mailbox": "bob@gmail.test"})
    fine_events, removed_events = event_kinds(db, fine.id), event_kinds(db, removed.id)

    report = check_connections(session_factory(client), services)

    assert (report.checked, report.healthy, report.failed) == (2, 1, 1)
    assert reload(db, fine.id).status is MailboxStatus.CONNECTED
    assert event_kinds(db, fine.id) == fine_events
    assert reload(db, revoked.id).status is MailboxStatus.REAUTH_REQUIRED
    assert event_kinds(db, revoked.id)[-1] == "reauth_required"
    assert reload(db, removed.id).status is MailboxStatus.DISCONNECTED
    assert event_kinds(db, removed.id) == removed_events

    # A mailbox already waiting for the user is not checked again.
    again = check_connections(session_factory(client), services)
    assert (again.checked, again.healthy, again.failed) == (1, 1, 0)


def test_health_check_goes_on_past_a_mailbox_whose_host_is_no_longer_configured(
    client: TestClient, db: Session, sandbox: Sandbox, services: ProviderServices
) -> None:
    first = linked(client, db, MICROSOFT)
    second = linked(client, db, GOOGLE)
    assert first.id < second.id
    google_only = dataclasses.replace(
        services,
        registry=ProviderRegistry(
            sign_in={ProviderName.GOOGLE: services.sign_in("google")},
            mail={ProviderName.GOOGLE: services.mail_host("google")},
        ),
    )
    sandbox.admin("revoke", {"mailbox": GOOGLE})

    report = check_connections(session_factory(client), google_only)

    assert (report.checked, report.healthy, report.failed) == (2, 0, 2)
    assert reload(db, second.id).status is MailboxStatus.REAUTH_REQUIRED
