"""Account rules: the first account, users, sign-in with lockout, sessions and API tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from sendwell.accounts import passwords
from sendwell.accounts import repository as repo
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, TooManyAttempts
from sendwell.kit.secrets import hash_secret, new_secret
from sendwell.models import ApiToken, Role, SignInFailure, User, UserSession, Workspace

API_TOKEN_PREFIX = "sw_"  # noqa: S105 (a visible prefix, not a secret)
MAX_NAME_LENGTH = 200
# A client may fail this many times more than one address may, before it is slowed down too.
CLIENT_FAILURE_FACTOR = 4
# Failures are kept this long: each one past the limit doubles the wait, up to a day.
FAILURE_MEMORY = timedelta(days=1)
BAD_CREDENTIALS = "The email or password is incorrect."
DEACTIVATED = "This account was deactivated by a workspace admin. Ask them if you need it again."
# "Last used" is recorded at this resolution so a busy script does not write on every call.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class SignInPolicy:
    max_failures: int
    window: timedelta


def normalize_email(raw: str, *, allow_test_domains: bool = False) -> str:
    """The canonical, lower-cased form of an address, or a clear error.

    ``allow_test_domains`` admits the reserved ``.test`` domain the sandbox's mailboxes use.
    """
    candidate = raw.strip()
    if not candidate:
        raise InvalidInput("Enter an email address.", code="invalid_email")
    try:
        result = validate_email(
            candidate, check_deliverability=False, test_environment=allow_test_domains
        )
    except EmailNotValidError as error:
        raise InvalidInput(
            f"That email address is not valid: {error}", code="invalid_email"
        ) from None
    return result.normalized.lower()


def clean_name(name: str) -> str:
    """A person's or workspace's name on one line, within the length limit."""
    return _clean_name(name)


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"Keep the name under {MAX_NAME_LENGTH} characters.", code="invalid_name"
        )
    return cleaned


def needs_first_account(db: Session) -> bool:
    return repo.count_users(db) == 0


def setup_token(secret_key: str) -> str:
    """The token that creating the first account asks for on a server others can reach.

    Derived from the server's secret key, so every web process of one installation prints and
    accepts the same one; it opens nothing once the first account exists.
    """
    digest = hmac.new(secret_key.encode(), b"sendwell first account", hashlib.sha256).digest()
    return base64.b32encode(digest[:15]).decode().lower()


def create_first_account(
    db: Session,
    *,
    email: str,
    password: str,
    name: str = "",
    workspace_name: str = "",
    required_token: str = "",
    given_token: str = "",
) -> User:
    """Create the workspace and its admin; refused once any user exists.

    `required_token` (empty: none) must match `given_token`: the setup token printed on the
    server's console, so that the first visitor of a public server cannot become its admin.
    """
    if not needs_first_account(db):
        raise Conflict("The first account already exists. Sign in instead.", code="already_set_up")
    if required_token and not hmac.compare_digest(
        given_token.strip().lower().encode(), required_token.encode()
    ):
        raise InvalidInput(
            "Enter the setup token that `sendwell serve` printed on the server's console.",
            code="setup_token",
        )
    address = normalize_email(email)
    passwords.check_password_rules(password, address)
    # One workspace per installation: its fixed key also stops two first accounts racing.
    workspace = Workspace(id=1, name=_clean_name(workspace_name) or "Sendwell")
    db.add(workspace)
    db.flush()
    return _add_user(db, workspace.id, address, password, _clean_name(name), Role.ADMIN)


def create_user(
    db: Session, *, email: str, password: str, name: str = "", role: Role = Role.MEMBER
) -> User:
    """Add a user to the workspace, creating the workspace for the very first user."""
    address = normalize_email(email)
    passwords.check_password_rules(password, address)
    if repo.get_user_by_email(db, address) is not None:
        raise Conflict(f"A user with the email {address} already exists.", code="duplicate_email")
    workspace = repo.get_workspace(db)
    if workspace is None:
        return create_first_account(db, email=address, password=password, name=name)
    return _add_user(db, workspace.id, address, password, _clean_name(name), role)


def _add_user(
    db: Session, workspace_id: int, email: str, password: str, name: str, role: Role
) -> User:
    if repo.get_user_by_email(db, email) is not None:
        raise Conflict(f"A user with the email {email} already exists.", code="duplicate_email")
    user = User(
        workspace_id=workspace_id,
        email=email,
        name=name,
        password_hash=passwords.hash_password(password),
        role=role,
    )
    db.add(user)
    db.flush()
    return user


def get_user_by_email(db: Session, email: str) -> User:
    user = repo.get_user_by_email(db, normalize_email(email))
    if user is None:
        raise NotFound(f"No user has the email {email.strip()}.", code="unknown_user")
    return user


def sign_in(
    db: Session, *, email: str, password: str, client_ip: str, policy: SignInPolicy
) -> User:
    """Check credentials under the lockout policy; a failure is recorded before it is raised."""
    now = utcnow()
    try:
        address = normalize_email(email)
    except InvalidInput:
        address = email.strip().lower()[:320]
    client_ip = client_key(client_ip)
    _refuse_when_locked_out(db, address, client_ip, policy, now)
    user = repo.get_user_by_email(db, address)
    if not passwords.verify_password(password, user.password_hash if user else None) or not user:
        db.add(SignInFailure(email=address, client_ip=client_ip[:64], at=now))
        db.flush()
        raise NotAuthenticated(BAD_CREDENTIALS, code="bad_credentials")
    if not user.is_active:
        raise NotAuthenticated(DEACTIVATED, code="deactivated")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.last_sign_in_at = now
    repo.delete_failures_before(db, now - FAILURE_MEMORY)
    return user


def client_key(client_ip: str) -> str:
    """The client as sign-in failures count it: an IPv6 address by its /64, the block one
    subscriber usually holds whole (a new address in it is no new client)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _refuse_when_locked_out(
    db: Session, email: str, client_ip: str, policy: SignInPolicy, now: datetime
) -> None:
    """Slow down guessing without letting anyone lock the owner out.

    Failures count per account *and* client: a stranger's wrong passwords lock only the
    stranger's own client out of that account, for `window`, doubling with each further
    failure (up to a day). Across accounts, one client is also limited, so spraying a password
    over many addresses stops as well.
    """
    count, _oldest, newest = repo.failures_since(
        db, since=now - FAILURE_MEMORY, email=email, client_ip=client_ip
    )
    if count >= policy.max_failures and newest is not None:
        wait = min(policy.window * 2 ** (count - policy.max_failures), FAILURE_MEMORY)
        _refuse_until(newest + wait, now)
    count, oldest, _newest = repo.failures_since(db, since=now - policy.window, client_ip=client_ip)
    if count >= policy.max_failures * CLIENT_FAILURE_FACTOR and oldest is not None:
        _refuse_until(oldest + policy.window, now)


def _refuse_until(until: datetime, now: datetime) -> None:
    if until <= now:
        return
    wait = max(1, int((until - now).total_seconds()))
    minutes = max(1, round(wait / 60))
    raise TooManyAttempts(
        f"Too many failed sign-in attempts from here. Try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}.",
        retry_after_seconds=wait,
    )


def start_session(db: Session, user: User, lifetime: timedelta) -> str:
    """Open a browser session and return the secret for its cookie."""
    secret = new_secret()
    now = utcnow()
    repo.delete_expired_sessions(db, now)
    db.add(
        UserSession(
            user_id=user.id,
            secret_hash=hash_secret(secret),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    db.flush()
    return secret


def user_for_session(db: Session, secret: str) -> User | None:
    session = repo.get_session_by_hash(db, hash_secret(secret))
    if session is None or session.expires_at <= utcnow() or not session.user.is_active:
        return None
    return session.user


def end_session(db: Session, secret: str) -> None:
    repo.delete_session_by_hash(db, hash_secret(secret))


def create_api_token(db: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """Issue a bearer token; the plaintext is returned once and never stored."""
    label = " ".join(name.split())
    if not label:
        raise InvalidInput(
            "Give the token a name, such as the script that will use it.", code="invalid_name"
        )
    if len(label) > 100:
        raise InvalidInput("Keep the token name under 100 characters.", code="invalid_name")
    plaintext = new_secret(API_TOKEN_PREFIX)
    token = ApiToken(
        user_id=user.id, name=label, token_hash=hash_secret(plaintext), hint=plaintext[-4:]
    )
    db.add(token)
    db.flush()
    return token, plaintext


def user_for_api_token(db: Session, plaintext: str) -> User | None:
    token = repo.get_api_token_by_hash(db, hash_secret(plaintext))
    if token is None or not token.user.is_active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_USE_RESOLUTION:
        token.last_used_at = now
    return token.user


def list_api_tokens(db: Session, user: User) -> list[ApiToken]:
    return repo.list_api_tokens(db, user.id)


def revoke_api_token(db: Session, user: User, token_id: int) -> None:
    token = repo.get_api_token(db, user.id, token_id)
    if token is None:
        raise NotFound("No such API token.", code="unknown_token")
    db.delete(token)
    db.flush()


def list_users(db: Session) -> list[User]:
    workspace = repo.get_workspace(db)
    return repo.list_users(db, workspace.id) if workspace else []


def set_password(db: Session, *, email: str, password: str, revoke_tokens: bool) -> User:
    """Replace a user's password, end every session they have and, if asked, their API tokens."""
    user = get_user_by_email(db, email)
    passwords.check_password_rules(password, user.email)
    user.password_hash = passwords.hash_password(password)
    repo.delete_sessions_of_user(db, user.id)
    if revoke_tokens:
        repo.delete_api_tokens_of_user(db, user.id)
    return user


def change_own_password(
    db: Session,
    user: User,
    *,
    current_password: str,
    new_password: str,
    revoke_tokens: bool = False,
    keep_session: str | None = None,
) -> None:
    """A user's own password change: the current one first; every other browser is signed out.

    ``keep_session`` is the secret of the browser that asked, which stays signed in.
    """
    stored = repo.get_user(db, user.id)
    if stored is None or not passwords.verify_password(current_password, stored.password_hash):
        raise InvalidInput("Your current password is not correct.", code="wrong_password")
    if new_password == current_password:
        raise InvalidInput(
            "Choose a new password that differs from the current one.", code="weak_password"
        )
    passwords.check_password_rules(new_password, stored.email)
    stored.password_hash = passwords.hash_password(new_password)
    repo.delete_sessions_of_user(
        db, stored.id, keep_hash=hash_secret(keep_session) if keep_session else None
    )
    if revoke_tokens:
        repo.delete_api_tokens_of_user(db, stored.id)


def rename(db: Session, user: User, name: str) -> User:
    """Change a user's display name (an empty name shows their address instead)."""
    stored = repo.get_user(db, user.id)
    if stored is None:
        raise NotFound("No such user.", code="unknown_user")
    stored.name = _clean_name(name)
    return stored


def end_every_session(db: Session, user_id: int) -> None:
    """Sign a user out of every browser and revoke every API token they have."""
    repo.delete_sessions_of_user(db, user_id)
    repo.delete_api_tokens_of_user(db, user_id)
