"""Every query the accounts feature runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload

from sendwell.models import ApiToken, Role, SignInFailure, User, UserSession, Workspace


def count_users(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(User)) or 0


def get_workspace(db: Session) -> Workspace | None:
    return db.scalar(select(Workspace).order_by(Workspace.id).limit(1))


def get_user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email))


def list_users(db: Session, workspace_id: int) -> list[User]:
    return list(db.scalars(select(User).where(User.workspace_id == workspace_id).order_by(User.id)))


def get_session_by_hash(db: Session, secret_hash: str) -> UserSession | None:
    return db.scalar(
        select(UserSession)
        .options(joinedload(UserSession.user))
        .where(UserSession.secret_hash == secret_hash)
    )


def delete_session_by_hash(db: Session, secret_hash: str) -> None:
    db.execute(delete(UserSession).where(UserSession.secret_hash == secret_hash))


def delete_expired_sessions(db: Session, now: datetime) -> None:
    db.execute(delete(UserSession).where(UserSession.expires_at <= now))


def get_api_token_by_hash(db: Session, token_hash: str) -> ApiToken | None:
    return db.scalar(
        select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.token_hash == token_hash)
    )


def list_api_tokens(db: Session, user_id: int) -> list[ApiToken]:
    return list(
        db.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id))
    )


def get_api_token(db: Session, user_id: int, token_id: int) -> ApiToken | None:
    return db.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))


def failures_since(
    db: Session, *, since: datetime, email: str | None = None, client_ip: str | None = None
) -> tuple[int, datetime | None, datetime | None]:
    """How many sign-ins failed since a moment, for an address and/or a client; oldest, newest."""
    query = select(func.count(), func.min(SignInFailure.at), func.max(SignInFailure.at)).where(
        SignInFailure.at > since
    )
    if email is not None:
        query = query.where(SignInFailure.email == email)
    if client_ip is not None:
        query = query.where(SignInFailure.client_ip == client_ip)
    count, oldest, newest = db.execute(query).one()
    return int(count), oldest, newest


def delete_failures_before(db: Session, moment: datetime) -> None:
    db.execute(delete(SignInFailure).where(SignInFailure.at <= moment))


def delete_api_tokens_of_user(db: Session, user_id: int) -> None:
    db.execute(delete(ApiToken).where(ApiToken.user_id == user_id))


def delete_sessions_of_user(db: Session, user_id: int, *, keep_hash: str | None = None) -> None:
    """End a user's browser sessions, all of them or all but one."""
    query = delete(UserSession).where(UserSession.user_id == user_id)
    if keep_hash is not None:
        query = query.where(UserSession.secret_hash != keep_hash)
    db.execute(query)


def get_user(db: Session, user_id: int) -> User | None:
    return db.get(User, user_id)


def admin_emails(db: Session, workspace_id: int) -> list[str]:
    """The workspace admins' addresses (who hears of workspace-wide trouble)."""
    return list(
        db.scalars(
            select(User.email).where(User.workspace_id == workspace_id, User.role == Role.ADMIN)
        )
    )


def active_user_emails(db: Session, workspace_id: int) -> list[str]:
    """The workspace's members who are not deactivated, by address."""
    return list(
        db.scalars(
            select(User.email)
            .where(User.workspace_id == workspace_id, User.deactivated_at.is_(None))
            .order_by(User.email)
        )
    )
