"""Queries for the recipients table (search, filters, sort, pages) and the actions on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    SendLedger,
)

# sort key -> the columns it orders by (the id last, so pages never overlap)
SORTS = {
    "email": (Enrollment.email,),
    "status": (Enrollment.status, Enrollment.email),
    "step": (Enrollment.steps_sent, Enrollment.email),
    "last_sent": (Enrollment.last_sent_at, Enrollment.email),
}


@dataclass(frozen=True)
class RecipientFilter:
    """What the recipients table shows: all of it empty shows everyone, by id."""

    q: str = ""
    status: EnrollmentStatus | None = None
    # Steps sent so far (0: nothing sent yet).
    step: int | None = None
    domain: str = ""
    sort: str = ""
    descending: bool = False


def _escaped(text: str) -> str:
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(text: str) -> str:
    return f"%{_escaped(text)}%"


def _conditions(campaign_id: int, chosen: RecipientFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Enrollment.campaign_id == campaign_id]
    if chosen.q:
        pattern = _like(chosen.q)
        full_name = func.lower(Enrollment.first_name + " " + Enrollment.last_name)
        conditions.append(
            or_(
                Enrollment.email.like(pattern, escape="\\"),
                func.lower(Enrollment.first_name).like(pattern, escape="\\"),
                func.lower(Enrollment.last_name).like(pattern, escape="\\"),
                full_name.like(pattern, escape="\\"),
            )
        )
    if chosen.status is not None:
        conditions.append(Enrollment.status == chosen.status)
    if chosen.step is not None:
        conditions.append(Enrollment.steps_sent == chosen.step)
    if chosen.domain:
        # Addresses are stored in lower case; the domain is everything after the last "@".
        domain = chosen.domain.lower().lstrip("@")
        conditions.append(Enrollment.email.like(f"%@{_escaped(domain)}", escape="\\"))
    return conditions


def filtered(
    db: Session, campaign_id: int, chosen: RecipientFilter, *, offset: int, limit: int
) -> list[Enrollment]:
    """One page of the campaign's recipients that match, in the chosen order."""
    columns = SORTS.get(chosen.sort, ())
    order: list[ColumnElement[Any]] = [c.desc() if chosen.descending else c.asc() for c in columns]
    if chosen.sort == "last_sent":
        # Never-sent recipients last either way.
        order = [Enrollment.last_sent_at.is_(None), *order]
    order.append(Enrollment.id.desc() if chosen.descending else Enrollment.id.asc())
    return list(
        db.scalars(
            select(Enrollment)
            .where(*_conditions(campaign_id, chosen))
            .order_by(*order)
            .offset(offset)
            .limit(limit)
        )
    )


def count_filtered(db: Session, campaign_id: int, chosen: RecipientFilter) -> int:
    return (
        db.scalar(
            select(func.count()).select_from(Enrollment).where(*_conditions(campaign_id, chosen))
        )
        or 0
    )


def for_action(db: Session, campaign_id: int, ids: list[int]) -> list[Enrollment]:
    """The campaign's recipients with these ids, locked for the change, in id order."""
    return list(
        db.scalars(
            select(Enrollment)
            .where(Enrollment.campaign_id == campaign_id, Enrollment.id.in_(ids))
            .order_by(Enrollment.id)
            .with_for_update()
        )
    )


def already_in(db: Session, campaign_id: int, emails: list[str]) -> set[str]:
    """Which of these addresses the campaign already has."""
    return set(
        db.scalars(
            select(Enrollment.email).where(
                Enrollment.campaign_id == campaign_id, Enrollment.email.in_(emails)
            )
        )
    )


def move_targets(db: Session, campaign: Campaign) -> list[Campaign]:
    """Campaigns of the same owner that recipients may be moved to, by name."""
    return list(
        db.scalars(
            select(Campaign)
            .where(
                Campaign.owner_id == campaign.owner_id,
                Campaign.workspace_id == campaign.workspace_id,
                Campaign.id != campaign.id,
                Campaign.status.not_in((CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED)),
            )
            .order_by(func.lower(Campaign.name), Campaign.id)
        )
    )


def in_flight_for(db: Session, enrollment_ids: list[int], now: datetime) -> int:
    """Sends to these recipients a worker is handing to a provider right now (see
    `dispatch.repository.in_flight`, the same for campaigns)."""
    return (
        db.scalar(
            select(func.count())
            .select_from(SendLedger)
            .where(
                SendLedger.enrollment_id.in_(enrollment_ids),
                SendLedger.status == LedgerStatus.UNKNOWN,
                SendLedger.lease_until > now,
                SendLedger.error == "",
            )
        )
        or 0
    )
