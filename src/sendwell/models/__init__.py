"""Every table, imported here so Alembic and the app see the whole schema."""

from sendwell.models.authoring import Snippet, TestSend
from sendwell.models.base import Base
from sendwell.models.campaign import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    CampaignStep,
    CatchUp,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    PauseReason,
    SendLedger,
    Suppression,
    SuppressionReason,
)
from sendwell.models.delegation import Delegation, DelegationStatus
from sendwell.models.domain import DomainCheck
from sendwell.models.expiry import ExpiryWarning
from sendwell.models.mailbox import (
    DueMark,
    LinkAttempt,
    Mailbox,
    MailboxEvent,
    MailboxEventKind,
    MailboxStatus,
    MailServer,
)
from sendwell.models.pending_import import PendingImport
from sendwell.models.reply import Interest, Reply, ReplyKind
from sendwell.models.team import Invitation
from sendwell.models.user import ApiToken, Role, SignInFailure, User, UserSession
from sendwell.models.webhook import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from sendwell.models.worker import DispatchWorker
from sendwell.models.workspace import Workspace

__all__ = [
    "ApiToken",
    "Base",
    "Campaign",
    "CampaignEvent",
    "CampaignStatus",
    "CampaignStep",
    "CatchUp",
    "Delegation",
    "DelegationStatus",
    "DeliveryStatus",
    "DispatchWorker",
    "DomainCheck",
    "DueMark",
    "Enrollment",
    "EnrollmentStatus",
    "ExpiryWarning",
    "Interest",
    "Invitation",
    "LedgerStatus",
    "LinkAttempt",
    "MailServer",
    "Mailbox",
    "MailboxEvent",
    "MailboxEventKind",
    "MailboxStatus",
    "PauseReason",
    "PendingImport",
    "Reply",
    "ReplyKind",
    "Role",
    "SendLedger",
    "SignInFailure",
    "Snippet",
    "Suppression",
    "SuppressionReason",
    "TestSend",
    "User",
    "UserSession",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "Workspace",
]
