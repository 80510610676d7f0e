"""What the Team page and one member's page show, each as the view model its template
renders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from sendwell.campaigns import service as campaign_service
from sendwell.kit.clock import utcnow
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.models import Campaign, Invitation, Mailbox, Role, User
from sendwell.teams import service

# The words and helpers a template calls are fields too, each made by a factory: a plain
# default would live on the class, and a function there reads back as a method of the view.


@dataclass(frozen=True)
class TeamPage:
    """`teams/team.html`: the workspace's people and open invitations, with the invitation
    form as posted, and the link of one just made when no email could carry it."""

    members: list[User]
    invitations: list[Invitation]
    inviters: dict[int, User]
    form: dict[str, str]
    invited: service.Invited | None
    error: str
    now: datetime
    role_labels: Mapping[Role, str] = field(default_factory=lambda: service.ROLE_LABELS, init=False)


def team_page(
    db: Session,
    admin: User,
    *,
    form: dict[str, str] | None = None,
    invited: service.Invited | None = None,
    error: str = "",
) -> TeamPage:
    members = service.team(db, admin)
    return TeamPage(
        members=members,
        invitations=service.open_invitations(db, admin),
        inviters={m.id: m for m in members},
        form=form or {"role": "member"},
        invited=invited,
        error=error,
        now=utcnow(),
    )


@dataclass(frozen=True)
class MemberPage:
    """`teams/member.html`: one person of the workspace, their campaigns, and whom and which
    account each campaign can be reassigned to."""

    member: User
    campaigns: list[Campaign]
    # Who may take a campaign over: the active people of the workspace.
    people: list[User]
    mailboxes: list[Mailbox]
    mailbox_by_id: dict[int, Mailbox]
    error: str
    status_label: Callable[[Campaign], str] = field(
        default_factory=lambda: campaign_service.status_label, init=False
    )
    pause_words: Callable[[Campaign], str] = field(
        default_factory=lambda: campaign_service.pause_reason_words, init=False
    )
    role_labels: Mapping[Role, str] = field(default_factory=lambda: service.ROLE_LABELS, init=False)


def member_page(db: Session, admin: User, user_id: int, *, error: str = "") -> MemberPage:
    member = service.get_member(db, admin, user_id)
    owned = service.campaigns_of(db, admin, user_id)
    mailboxes = mailbox_repo.workspace_mailboxes(db, admin.workspace_id)
    return MemberPage(
        member=member,
        campaigns=owned,
        people=[m for m in service.team(db, admin) if m.is_active],
        mailboxes=mailboxes,
        mailbox_by_id={m.id: m for m in mailboxes},
        error=error,
    )
