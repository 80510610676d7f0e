"""Every query the replies feature runs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from sendwell.models import (
    Campaign,
    Enrollment,
    Interest,
    Mailbox,
    MailServer,
    Reply,
    ReplyKind,
    User,
)


@dataclass(frozen=True)
class Filters:
    """What a list of replies is narrowed to; None means any."""

    campaign_id: int | None = None
    enrollment_id: int | None = None
    kind: ReplyKind | None = None
    interest: Interest | None = None


def _visible(user: User) -> Select[Reply, Campaign, Enrollment, Mailbox]:
    """Replies to campaigns the user may see: their own, or the workspace's for an admin
    (the same rule as the Campaigns tab)."""
    query = (
        select(Reply, Campaign, Enrollment, Mailbox)
        .join(Campaign, Campaign.id == Reply.campaign_id)
        .join(Enrollment, Enrollment.id == Reply.enrollment_id)
        .join(Mailbox, Mailbox.id == Reply.mailbox_id)
        .where(Campaign.workspace_id == user.workspace_id)
    )
    if not user.is_admin:
        query = query.where(Campaign.owner_id == user.id)
    return query


def visible_replies(
    db: Session, user: User, filters: Filters, *, limit: int
) -> list[tuple[Reply, Campaign, Enrollment, Mailbox]]:
    """The newest replies first, each with its campaign, recipient and mailbox."""
    query = _visible(user)
    if filters.campaign_id is not None:
        query = query.where(Reply.campaign_id == filters.campaign_id)
    if filters.enrollment_id is not None:
        query = query.where(Reply.enrollment_id == filters.enrollment_id)
    if filters.kind is not None:
        query = query.where(Reply.kind == filters.kind)
    if filters.interest is not None:
        query = query.where(Reply.interest == filters.interest)
    query = query.order_by(Reply.received_at.desc(), Reply.id.desc()).limit(limit)
    return [(r, c, e, m) for r, c, e, m in db.execute(query)]


def visible_reply(
    db: Session, user: User, reply_id: int
) -> tuple[Reply, Campaign, Enrollment, Mailbox] | None:
    row = db.execute(_visible(user).where(Reply.id == reply_id)).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


def known_recipients(db: Session, mailbox_id: int, provider_message_id: str) -> set[int]:
    """Which recipients this inbound message is already recorded for."""
    return set(
        db.scalars(
            select(Reply.enrollment_id).where(
                Reply.mailbox_id == mailbox_id,
                Reply.provider_message_id == provider_message_id,
            )
        )
    )


def webmail_urls(db: Session, mailbox_ids: set[int]) -> dict[int, str]:
    """IMAP/SMTP accounts' webmail addresses, by mailbox ("" when not set)."""
    if not mailbox_ids:
        return {}
    rows = db.execute(
        select(MailServer.mailbox_id, MailServer.webmail_url).where(
            MailServer.mailbox_id.in_(mailbox_ids)
        )
    )
    return {int(mailbox_id): str(url) for mailbox_id, url in rows}


def counts_by_kind(db: Session, campaign_id: int) -> dict[str, int]:
    """A campaign's replies and automatic replies, and the recipients marked interested or
    not interested (a recipient who answered twice counts once)."""
    counts = {"reply": 0, "auto_reply": 0, "interested": 0, "not_interested": 0}
    kinds = db.execute(
        select(Reply.kind, func.count())
        .where(Reply.campaign_id == campaign_id)
        .group_by(Reply.kind)
    )
    for kind, count in kinds:
        counts[kind.value] = int(count)
    marks = db.execute(
        select(Reply.interest, func.count(func.distinct(Reply.enrollment_id)))
        .where(Reply.campaign_id == campaign_id, Reply.interest != Interest.NONE)
        .group_by(Reply.interest)
    )
    for interest, count in marks:
        counts[interest.value] = int(count)
    return counts
