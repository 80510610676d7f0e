"""What a delegation's page shows, as the view model its template renders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from sendwell.campaigns import repository as campaign_repo
from sendwell.campaigns import service as campaign_service
from sendwell.config import Settings
from sendwell.delegations import service
from sendwell.delegations.service import DelegationView
from sendwell.models import Campaign, Mailbox, PauseReason, User

# A delegate may resume the campaigns paused for these reasons from the delegation's page.
RESUMABLE = (PauseReason.DELEGATION_WITHDRAWN, *campaign_service.MAILBOX_REASONS)


@dataclass(frozen=True)
class DelegationPage:
    """`delegations/detail.html`: the request, the accounts its owner can approve, the
    campaigns sent from it and those waiting to resume, with the form as posted."""

    view: DelegationView
    mailboxes: list[Mailbox]
    campaigns: list[Campaign]
    counts: dict[int, dict[str, int]]
    waiting: list[Campaign]
    # The page's own address, to send to the teammate.
    link: str
    error: str
    email: str
    # Made by factories: a function as a plain default would read back as a method.
    status_label: Callable[[Campaign], str] = field(
        default_factory=lambda: campaign_service.status_label, init=False
    )
    pause_words: Callable[[Campaign], str] = field(
        default_factory=lambda: campaign_service.pause_reason_words, init=False
    )


def delegation_page(
    db: Session,
    user: User,
    settings: Settings,
    delegation_id: int,
    *,
    error: str = "",
    email: str = "",
) -> DelegationPage:
    view = service.get_view(db, user, delegation_id)
    sent = service.campaigns_sent(db, view)
    return DelegationPage(
        view=view,
        mailboxes=service.approvable_mailboxes(db, user, view),
        campaigns=sent,
        counts=campaign_repo.counts_for(db, [c.id for c in sent]),
        waiting=[
            c
            for c in sent
            if c.status.value == "paused"
            and c.pause_reason in RESUMABLE
            and view.viewer == "delegate"
        ],
        link=f"{settings.base_url}{view.link}",
        error=error,
        email=email,
    )
