"""Pauses that answer only once nothing more goes out: the pause is committed (the sending
engine reads it before handing a send over), then the sends already being handed over are
waited for. A campaign's pause, and a recipient action (pause, remove, move, mark replied)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from sendwell.campaigns import recipient_actions
from sendwell.campaigns import service as campaigns
from sendwell.campaigns.recipient_actions import Action, ActionReport
from sendwell.db import commit_then
from sendwell.dispatch.engine import settle_in_flight
from sendwell.models import Campaign, User


def pause(db: Session, factory: sessionmaker[Session], user: User, campaign_id: int) -> Campaign:
    """Pause the campaign; when this returns, nothing more of it is handed to the mail host."""
    campaign = campaigns.pause(db, user, campaign_id)
    commit_then(db, lambda: settle_in_flight(factory, [campaign_id]))
    return campaign


def act_on_recipients(
    db: Session,
    factory: sessionmaker[Session],
    user: User,
    campaign_id: int,
    *,
    action: Action,
    ids: list[int],
    to_campaign_id: int | None = None,
) -> ActionReport:
    """The recipient action; when this returns, nothing more goes to the recipients it
    changed."""
    report = recipient_actions.act(
        db, user, campaign_id, action=action, ids=ids, to_campaign_id=to_campaign_id
    )
    changed = [enrollment.id for enrollment in report.changed]
    commit_then(db, lambda: recipient_actions.settle_in_flight(factory, changed))
    return report
