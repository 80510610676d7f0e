"""Every table, imported here so Alembic and the app see the whole schema."""

from sendwell.models.base import Base
from sendwell.models.mailbox import (
    LinkAttempt,
    Mailbox,
    MailboxEvent,
    MailboxEventKind,
    MailboxStatus,
)
from sendwell.models.user import ApiToken, Role, SignInFailure, User, UserSession
from sendwell.models.workspace import Workspace

__all__ = [
    "ApiToken",
    "Base",
    "LinkAttempt",
    "Mailbox",
    "MailboxEvent",
    "MailboxEventKind",
    "MailboxStatus",
    "Role",
    "SignInFailure",
    "User",
    "UserSession",
    "Workspace",
]
