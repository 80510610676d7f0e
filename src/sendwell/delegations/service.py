"""Delegation rules: ask a teammate, their approval for one of their mailboxes, withdrawal.

The mailbox stays its owner's: they link and reauthenticate it, replies land in it, and their
approval is what lets the delegate's campaigns send from it. Withdrawing pauses those campaigns
the way a disconnect does; after a new approval the delegate resumes them where they stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from sendwell.campaigns import service as campaigns
from sendwell.db import commit_then
from sendwell.delegations import repository as repo
from sendwell.dispatch.engine import settle_in_flight
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, InvalidInput, NotFound
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.mailboxes import service as mailboxes
from sendwell.models import (
    Campaign,
    Delegation,
    DelegationStatus,
    Mailbox,
    MailboxEventKind,
    MailboxStatus,
    PauseReason,
    User,
)

MAX_NOTE_LENGTH = 1000
DELEGATION_PATH = "/delegations/"
STATUS_LABELS = {
    DelegationStatus.REQUESTED: "Waiting for approval",
    DelegationStatus.APPROVED: "Approved",
    DelegationStatus.WITHDRAWN: "Approval withdrawn",
    DelegationStatus.DECLINED: "Declined",
}


@dataclass(frozen=True)
class DelegationView:
    """A delegation as one of its two parties sees it."""

    delegation: Delegation
    delegate: User
    owner: User
    mailbox: Mailbox | None
    viewer: Literal["owner", "delegate"]

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.delegation.status]

    @property
    def link(self) -> str:
        return f"{DELEGATION_PATH}{self.delegation.id}"


def request(db: Session, delegate: User, *, owner_id: int, note: str = "") -> DelegationView:
    """Ask a teammate for one of their mailboxes; they choose which when they approve."""
    owner = _teammate(db, delegate.workspace_id, owner_id)
    if owner is None or not owner.is_active:
        raise InvalidInput("Choose a teammate from the list.", code="unknown_teammate")
    if owner.id == delegate.id:
        raise InvalidInput(
            "To send from your own account, choose “Your email account”.", code="own_account"
        )
    clean_note = note.strip().replace("\r\n", "\n")
    if len(clean_note) > MAX_NOTE_LENGTH:
        raise InvalidInput(
            f"Keep the note under {MAX_NOTE_LENGTH:,} characters.", code="invalid_note"
        )
    existing = repo.open_between(db, delegate.id, owner.id)
    if existing is not None:
        return _view(db, delegate, existing)
    delegation = Delegation(
        workspace_id=delegate.workspace_id,
        delegate_id=delegate.id,
        owner_id=owner.id,
        status=DelegationStatus.REQUESTED,
        note=clean_note,
        requested_at=utcnow(),
    )
    db.add(delegation)
    db.flush()
    return _view(db, delegate, delegation)


def request_email(view: DelegationView, base_url: str) -> tuple[str, str, str]:
    """(to, subject, text) of the email that asks the owner for their approval."""
    who = view.delegate
    note = f"\nTheir note: {view.delegation.note}\n" if view.delegation.note else ""
    return (
        view.owner.email,
        f"{who.display_name} asks to send from your email account",
        f"{who.display_name} ({who.email}) asks to send Sendwell campaigns from one of your "
        f"email accounts. Replies would land in your inbox.\n{note}\n"
        f"See exactly what this allows, and approve or decline: {base_url}{view.link}\n",
    )


def withdrawal_email(view: DelegationView, base_url: str) -> tuple[str, str, str]:
    """(to, subject, text) telling the delegate their campaigns from the mailbox paused."""
    address = view.mailbox.email if view.mailbox else "their email account"
    return (
        view.delegate.email,
        f"{view.owner.display_name} withdrew their approval for {address}",
        f"{view.owner.display_name} withdrew their approval for you to send from {address}. "
        "Your campaigns from it are paused; nothing is lost. If they approve again, resume "
        f"them and they continue from where they left off: {base_url}{view.link}\n",
    )


def _teammate(db: Session, workspace_id: int, user_id: int) -> User | None:
    found = repo.users(db, {user_id}).get(user_id)
    return found if found is not None and found.workspace_id == workspace_id else None


def get_view(db: Session, user: User, delegation_id: int) -> DelegationView:
    """A delegation its owner or its delegate can see; to anyone else it does not exist."""
    delegation = repo.get(db, user.workspace_id, delegation_id)
    if delegation is None or user.id not in (delegation.owner_id, delegation.delegate_id):
        raise NotFound("No such request to share an email account.", code="unknown_delegation")
    return _view(db, user, delegation)


def views_for(db: Session, user: User) -> list[DelegationView]:
    """Every delegation the user asked for or was asked for, newest first."""
    found = repo.involving(db, user.id)
    people = repo.users(db, {d.owner_id for d in found} | {d.delegate_id for d in found})
    boxes = repo.mailboxes(db, {d.mailbox_id for d in found if d.mailbox_id is not None})
    return [
        DelegationView(
            d,
            people[d.delegate_id],
            people[d.owner_id],
            boxes.get(d.mailbox_id) if d.mailbox_id is not None else None,
            "owner" if d.owner_id == user.id else "delegate",
        )
        for d in found
    ]


def _view(db: Session, viewer: User, delegation: Delegation) -> DelegationView:
    people = repo.users(db, {delegation.owner_id, delegation.delegate_id})
    mailbox = (
        mailbox_repo.get_mailbox(db, delegation.mailbox_id)
        if delegation.mailbox_id is not None
        else None
    )
    return DelegationView(
        delegation,
        people[delegation.delegate_id],
        people[delegation.owner_id],
        mailbox,
        "owner" if delegation.owner_id == viewer.id else "delegate",
    )


def approvable_mailboxes(db: Session, owner: User, view: DelegationView) -> list[Mailbox]:
    """The owner's connected mailboxes that can be approved for this delegation: after a
    withdrawal, only the one approved before (its paused campaigns send from it)."""
    if view.viewer != "owner":
        return []
    found = repo.owned_connected_mailboxes(db, owner.id)
    if view.delegation.mailbox_id is not None:
        found = [m for m in found if m.id == view.delegation.mailbox_id]
    return found


def approve(db: Session, owner: User, delegation_id: int, mailbox_id: int) -> DelegationView:
    """The owner approves: the delegate may send from this mailbox of theirs from now on."""
    view = get_view(db, owner, delegation_id)
    delegation = view.delegation
    if view.viewer != "owner":
        raise NotFound("No such request to share an email account.", code="unknown_delegation")
    if delegation.status is DelegationStatus.APPROVED:
        return view
    if not view.delegate.is_active:
        raise Conflict(
            f"{view.delegate.display_name}'s account was deactivated.", code="deactivated"
        )
    allowed = {m.id: m for m in approvable_mailboxes(db, owner, view)}
    mailbox = allowed.get(mailbox_id)
    if mailbox is None:
        raise InvalidInput(
            "Choose one of your connected email accounts"
            + (" (the one approved before)." if delegation.mailbox_id is not None else "."),
            code="unknown_mailbox",
        )
    delegation.status = DelegationStatus.APPROVED
    delegation.mailbox_id = mailbox.id
    delegation.granted_at = utcnow()
    delegation.withdrawn_at = None
    mailboxes.record_event(
        db,
        mailbox,
        MailboxEventKind.DELEGATED,
        actor=owner,
        reason=f"{owner.display_name} approved {view.delegate.display_name} "
        f"({view.delegate.email}) to send campaigns from it.",
    )
    db.flush()
    return _view(db, owner, delegation)


def withdraw(db: Session, user: User, delegation_id: int) -> tuple[DelegationView, list[int]]:
    """Either party ends it (the owner withdraws or declines, the delegate stops): the
    delegate's active campaigns from the mailbox pause, with the reason; returns their ids."""
    view = get_view(db, user, delegation_id)
    return _end(db, view, actor=user)


def end_for_deactivated(db: Session, user: User, *, actor: User) -> list[int]:
    """A deactivated user's delegations end, both ways; returns the campaigns paused."""
    paused: list[int] = []
    for delegation in repo.open_involving(db, user.id):
        paused += _end(db, _view(db, user, delegation), actor=actor)[1]
    return paused


def withdraw_settled(
    db: Session, factory: sessionmaker[Session], user: User, delegation_id: int
) -> tuple[DelegationView, list[int]]:
    """Withdraw; as for a pause, once the page says "paused", nothing more of the campaigns
    it paused goes out: the pauses are committed, then their in-flight sends waited for."""
    view, paused = withdraw(db, user, delegation_id)
    if paused:
        commit_then(db, lambda: settle_in_flight(factory, paused))
    return view, paused


def _end(db: Session, view: DelegationView, *, actor: User) -> tuple[DelegationView, list[int]]:
    delegation = view.delegation
    if delegation.status is DelegationStatus.REQUESTED:
        delegation.status = DelegationStatus.DECLINED
        delegation.withdrawn_at = utcnow()
        db.flush()
        return view, []
    if delegation.status is not DelegationStatus.APPROVED or delegation.mailbox_id is None:
        return view, []
    delegation.status = DelegationStatus.WITHDRAWN
    delegation.withdrawn_at = utcnow()
    db.flush()
    paused = []
    for campaign_id in repo.active_campaign_ids(db, delegation.delegate_id, delegation.mailbox_id):
        campaigns.pause(db, None, campaign_id, reason=PauseReason.DELEGATION_WITHDRAWN, actor=actor)
        paused.append(campaign_id)
    if view.mailbox is not None:
        mailboxes.record_event(
            db,
            view.mailbox,
            MailboxEventKind.DELEGATION_WITHDRAWN,
            actor=actor,
            reason=f"{actor.display_name} ended {view.delegate.display_name}'s approval to "
            f"send from it; {len(paused)} campaign{'s' if len(paused) != 1 else ''} paused.",
        )
    db.flush()
    return view, paused


def campaigns_sent(db: Session, view: DelegationView) -> list[Campaign]:
    """Every campaign the delegate sent (or is sending) from the mailbox: the owner sees them."""
    if view.delegation.mailbox_id is None:
        return []
    return repo.campaigns_sent(db, view.delegation.delegate_id, view.delegation.mailbox_id)


def sendable_mailboxes(db: Session, user: User) -> list[Mailbox]:
    """The mailboxes a user's campaigns may send from: their own and the teammates' approved
    for them, none disconnected (an admin sees everyone's, but sends only from these)."""
    own = mailbox_repo.owned_mailboxes(db, user.id)
    seen = {m.id for m in own}
    shared = [m for m in repo.approved_mailboxes(db, user.id) if m.id not in seen]
    return [m for m in [*own, *shared] if m.status is not MailboxStatus.DISCONNECTED]
