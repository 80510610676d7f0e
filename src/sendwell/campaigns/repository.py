"""Every query the campaigns feature runs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    Table,
    Text,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload

from sendwell.models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    Interest,
    LedgerStatus,
    PauseReason,
    PendingImport,
    Reply,
    SendLedger,
    Suppression,
    User,
)
from sendwell.models.campaign import enrollment_pending


def _visible(user: User) -> Select[Campaign]:
    query = select(Campaign).where(Campaign.workspace_id == user.workspace_id)
    if not user.is_admin:
        query = query.where(Campaign.owner_id == user.id)
    return query


def visible_campaigns(db: Session, user: User, *, include_archived: bool = True) -> list[Campaign]:
    query = _visible(user).options(selectinload(Campaign.mailbox), selectinload(Campaign.steps))
    if not include_archived:
        query = query.where(Campaign.status != CampaignStatus.ARCHIVED)
    return list(db.scalars(query.order_by(Campaign.created_at.desc(), Campaign.id.desc())))


def count_visible_campaigns(db: Session, user: User) -> int:
    return db.scalar(select(func.count()).select_from(_visible(user).subquery())) or 0


def get_visible_campaign(db: Session, user: User, campaign_id: int) -> Campaign | None:
    return db.scalar(
        _visible(user)
        .where(Campaign.id == campaign_id)
        .options(selectinload(Campaign.steps), selectinload(Campaign.mailbox))
    )


def paused_for_mailbox(
    db: Session, user: User, mailbox_id: int, reasons: tuple[PauseReason, ...]
) -> list[Campaign]:
    query = _visible(user).where(
        Campaign.mailbox_id == mailbox_id,
        Campaign.status == CampaignStatus.PAUSED,
        Campaign.pause_reason.in_(reasons),
    )
    return list(db.scalars(query.order_by(Campaign.name, Campaign.id)))


def counts_for(db: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Recipients by outcome and messages sent, per campaign, in two grouped queries."""
    result = {
        cid: {
            "recipients": 0,
            "sent": 0,
            "replied": 0,
            "bounced": 0,
            "completed": 0,
            "unsubscribed": 0,
            "failed": 0,
            "finished": 0,
            "interested": 0,
        }
        for cid in campaign_ids
    }
    if not campaign_ids:
        return result
    finished = (
        EnrollmentStatus.COMPLETED,
        EnrollmentStatus.REPLIED,
        EnrollmentStatus.BOUNCED,
        EnrollmentStatus.UNSUBSCRIBED,
        EnrollmentStatus.FAILED,
        # Taken out of the sequence by a person: nothing more goes to them here.
        EnrollmentStatus.REMOVED,
        EnrollmentStatus.MOVED,
    )
    rows = db.execute(
        select(Enrollment.campaign_id, Enrollment.status, func.count())
        .where(Enrollment.campaign_id.in_(campaign_ids))
        .group_by(Enrollment.campaign_id, Enrollment.status)
    )
    for campaign_id, status, count in rows:
        counts = result[campaign_id]
        counts["recipients"] += count
        if status.value in counts:
            counts[status.value] += count
        if status in finished:
            counts["finished"] += count
    sent = db.execute(
        select(SendLedger.campaign_id, func.count())
        .where(SendLedger.campaign_id.in_(campaign_ids), SendLedger.status == LedgerStatus.SENT)
        .group_by(SendLedger.campaign_id)
    )
    for campaign_id, count in sent:
        result[campaign_id]["sent"] = count
    # Recipients whose reply is marked Interested (the Replies view), each once.
    interested = db.execute(
        select(Reply.campaign_id, func.count(func.distinct(Reply.enrollment_id)))
        .where(Reply.campaign_id.in_(campaign_ids), Reply.interest == Interest.INTERESTED)
        .group_by(Reply.campaign_id)
    )
    for campaign_id, count in interested:
        result[campaign_id]["interested"] = count
    return result


def events(db: Session, campaign_id: int, limit: int = 200) -> list[CampaignEvent]:
    return list(
        db.scalars(
            select(CampaignEvent)
            .where(CampaignEvent.campaign_id == campaign_id)
            .order_by(CampaignEvent.at.desc(), CampaignEvent.id.desc())
            .limit(limit)
        )
    )


def enrollments(
    db: Session, campaign_id: int, *, offset: int = 0, limit: int = 100
) -> list[Enrollment]:
    return list(
        db.scalars(
            select(Enrollment)
            .where(Enrollment.campaign_id == campaign_id)
            .order_by(Enrollment.id)
            .offset(offset)
            .limit(limit)
        )
    )


def all_enrollments(db: Session, campaign_id: int, batch: int = 1000) -> Iterable[Enrollment]:
    """Every enrollment, in batches: unchanged rows are only weakly held by the session."""
    last_id = 0
    while True:
        page = list(
            db.scalars(
                select(Enrollment)
                .where(Enrollment.campaign_id == campaign_id, Enrollment.id > last_id)
                .order_by(Enrollment.id)
                .limit(batch)
            )
        )
        if not page:
            return
        yield from page
        last_id = page[-1].id


def ledger_for(db: Session, enrollment_id: int) -> list[SendLedger]:
    return list(
        db.scalars(
            select(SendLedger)
            .where(SendLedger.enrollment_id == enrollment_id)
            .order_by(SendLedger.step_position)
        )
    )


def get_enrollment(db: Session, campaign_id: int, enrollment_id: int) -> Enrollment | None:
    return db.scalar(
        select(Enrollment).where(
            Enrollment.campaign_id == campaign_id, Enrollment.id == enrollment_id
        )
    )


def first_enrollment(db: Session, campaign_id: int) -> Enrollment | None:
    return db.scalar(
        select(Enrollment)
        .where(Enrollment.campaign_id == campaign_id)
        .order_by(Enrollment.id)
        .limit(1)
    )


def recipient_field_values(
    db: Session, campaign_id: int, batch: int = 1000
) -> Iterable[dict[str, Any]]:
    """Each recipient's merge-field values (standard columns and custom fields), in batches."""
    last_id = 0
    columns = (
        Enrollment.id,
        Enrollment.email,
        Enrollment.first_name,
        Enrollment.last_name,
        Enrollment.company,
        Enrollment.title,
        Enrollment.fields,
    )
    while True:
        page = db.execute(
            select(*columns)
            .where(Enrollment.campaign_id == campaign_id, Enrollment.id > last_id)
            .order_by(Enrollment.id)
            .limit(batch)
        ).all()
        if not page:
            return
        for row in page:
            yield {key: value for key, value in row._mapping.items() if key != "id"}
        last_id = page[-1].id


def elsewhere(
    db: Session, workspace_id: int, campaign_id: int, emails: list[str]
) -> list[tuple[str, EnrollmentStatus, int, str, int, datetime | None]]:
    """The workspace's other campaigns' recipients among `emails` that were emailed or that
    stopped (replied, bounced, unsubscribed): (email, status, steps sent, campaign name,
    campaign owner, last sent)."""
    if not emails or not _has_other_campaigns(db, workspace_id, campaign_id):
        return []
    rows = db.execute(
        select(
            Enrollment.email,
            Enrollment.status,
            Enrollment.steps_sent,
            Campaign.name,
            Campaign.owner_id,
            Enrollment.last_sent_at,
        )
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(
            Campaign.workspace_id == workspace_id,
            Campaign.id != campaign_id,
            _among(db, Enrollment.email, emails),
            (Enrollment.steps_sent > 0)
            | Enrollment.status.in_(
                (
                    EnrollmentStatus.REPLIED,
                    EnrollmentStatus.BOUNCED,
                    EnrollmentStatus.UNSUBSCRIBED,
                )
            ),
        )
        .order_by(Enrollment.id)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def _has_other_campaigns(db: Session, workspace_id: int, campaign_id: int) -> bool:
    """Whether the workspace has a campaign besides this one (a first campaign's import
    has no history elsewhere to look up)."""
    other = select(Campaign.id).where(
        Campaign.workspace_id == workspace_id, Campaign.id != campaign_id
    )
    return db.scalar(other.limit(1)) is not None


def suppressed(db: Session, workspace_id: int, emails: list[str]) -> dict[str, str]:
    """Which of these addresses the workspace never emails again, and why."""
    if not emails:
        return {}
    rows = db.execute(
        select(Suppression.email, Suppression.reason).where(
            Suppression.workspace_id == workspace_id, _among(db, Suppression.email, emails)
        )
    )
    return {email: reason.value for email, reason in rows}


def _among(db: Session, column: Any, emails: list[str]) -> ColumnElement[bool]:
    """`column` is one of `emails`. On PostgreSQL the addresses travel as one array (`= ANY`):
    an import's statement for a batch of a thousand stays short and is not parsed anew for
    every batch, as an IN list of a thousand parameters would be."""
    if db.get_bind().dialect.name == "postgresql":
        return column == any_(literal(emails, ARRAY(Text)))  # type: ignore[no-any-return]
    return column.in_(emails)  # type: ignore[no-any-return]


def insert_new_enrollments(db: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert recipients not yet in their campaign; returns the addresses actually added.

    Rows of one batch share every value but the recipient's own (address, names, company,
    title, fields). On PostgreSQL those travel as one array per column through `unnest`, so
    the statement stays short however large the batch (a multi-row VALUES statement would be
    parsed again for every batch).
    """
    if not rows:
        return set()
    if db.get_bind().dialect.name == "postgresql":
        return _insert_unnested(db, rows)
    # The table's own INSERT, not the ORM's bulk one: the rows are plain values already, and
    # the ORM's per-row bookkeeping cost as much as the insert itself.
    enrollments = cast(Table, Enrollment.__table__)
    statement = (
        sqlite_insert(enrollments)
        .on_conflict_do_nothing(index_elements=["campaign_id", "email"])
        .returning(enrollments.c.email)
    )
    return set(db.execute(statement, rows).scalars())


RECIPIENT_COLUMNS = ("email", "first_name", "last_name", "company", "title", "fields", "timezone")


def _insert_unnested(db: Session, rows: list[dict[str, Any]]) -> set[str]:
    shared = {k: v for k, v in rows[0].items() if k not in RECIPIENT_COLUMNS}
    if any({k: v for k, v in row.items() if k not in RECIPIENT_COLUMNS} != shared for row in rows):
        raise ValueError("rows of one batch must share everything but the recipient's values")
    source = (
        func.unnest(
            *(
                bindparam(
                    name,
                    [row[name] for row in rows],
                    type_=ARRAY(JSON if name == "fields" else Text),
                )
                for name in RECIPIENT_COLUMNS
            )
        )
        .table_valued(*RECIPIENT_COLUMNS)
        .render_derived(name="recipient")
    )
    names = [*RECIPIENT_COLUMNS, *shared]
    values = [
        *(source.c[name] for name in RECIPIENT_COLUMNS),
        *(
            literal(value, type_=Enrollment.__table__.c[name].type)
            for name, value in shared.items()
        ),
    ]
    statement = (
        pg_insert(Enrollment)
        .from_select(names, select(*values))
        .on_conflict_do_nothing(index_elements=["campaign_id", "email"])
        .returning(Enrollment.email)
    )
    return set(db.scalars(statement))


def has_pending(db: Session, campaign_id: int) -> bool:
    """Whether any recipient still has a step to come (stops at the first one found).

    A recipient someone paused still has steps to come: the campaign is not complete.
    """
    return bool(
        db.scalar(
            select(exists().where(Enrollment.campaign_id == campaign_id, enrollment_pending()))
        )
    ) or bool(
        db.scalar(
            select(
                exists().where(
                    Enrollment.campaign_id == campaign_id,
                    Enrollment.status == EnrollmentStatus.PAUSED,
                )
            )
        )
    )


def count_enrollments(db: Session, campaign_id: int) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(Enrollment.campaign_id == campaign_id)
        )
        or 0
    )


def count_unstarted(db: Session, campaign_id: int) -> int:
    """Recipients who have received nothing and have no due time yet: Start gives them one."""
    return (
        db.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(
                Enrollment.campaign_id == campaign_id,
                Enrollment.status == EnrollmentStatus.NOT_STARTED,
                Enrollment.next_due_at.is_(None),
            )
        )
        or 0
    )


def schedule_unstarted(db: Session, campaign_id: int, due_at: datetime) -> None:
    """Give every recipient who has received nothing yet their first due time."""
    db.execute(
        update(Enrollment)
        .where(
            Enrollment.campaign_id == campaign_id,
            Enrollment.status == EnrollmentStatus.NOT_STARTED,
            Enrollment.next_due_at.is_(None),
        )
        .values(next_due_at=due_at)
        .execution_options(synchronize_session=False)
    )


def pause_active_for_mailbox(
    db: Session, mailbox_id: int, reason: PauseReason, now: datetime
) -> list[int]:
    """Pause a mailbox's active campaigns: touches campaign rows only, never recipients."""
    ids = list(
        db.scalars(
            select(Campaign.id)
            .where(Campaign.mailbox_id == mailbox_id, Campaign.status == CampaignStatus.ACTIVE)
            .with_for_update()
        )
    )
    if ids:
        db.execute(
            update(Campaign)
            .where(Campaign.id.in_(ids))
            .values(status=CampaignStatus.PAUSED, pause_reason=reason, status_changed_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids


def add_events(
    db: Session, campaign_ids: list[int], *, kind: str, reason: str, at: datetime
) -> None:
    """The same event for each of these campaigns, written in one short statement."""
    if not campaign_ids:
        return
    columns = CampaignEvent.__table__.c
    db.execute(
        insert(CampaignEvent).from_select(
            ["campaign_id", "kind", "reason", "at"],
            select(
                Campaign.id,
                literal(kind, columns.kind.type),
                literal(reason, columns.reason.type),
                literal(at, columns.at.type),
            )
            .where(Campaign.id.in_(campaign_ids))
            .order_by(Campaign.id),
        )
    )


def load_campaigns(db: Session, ids: list[int]) -> list[Campaign]:
    """These campaigns as the database has them now, in one query (replacing stale copies)."""
    if not ids:
        return []
    return list(
        db.scalars(
            select(Campaign).where(Campaign.id.in_(ids)).execution_options(populate_existing=True)
        )
    )


def daily_activity(db: Session, campaign_id: int, since: datetime) -> list[tuple[str, int, int]]:
    """(day, step position, messages sent) for the chart."""
    day = func.date(SendLedger.sent_at)
    rows = db.execute(
        select(day, SendLedger.step_position, func.count())
        .where(
            SendLedger.campaign_id == campaign_id,
            SendLedger.status == LedgerStatus.SENT,
            SendLedger.sent_at >= since,
        )
        .group_by(day, SendLedger.step_position)
        .order_by(day)
    )
    return [(str(d), int(step), int(count)) for d, step, count in rows]


def outcomes_by_step(db: Session, campaign_id: int) -> dict[int, dict[str, int]]:
    """Per step: how many were sent, and replies/bounces among recipients who got it last."""
    result: dict[int, dict[str, int]] = {}
    sent = db.execute(
        select(SendLedger.step_position, func.count())
        .where(SendLedger.campaign_id == campaign_id, SendLedger.status == LedgerStatus.SENT)
        .group_by(SendLedger.step_position)
    )
    for step, count in sent:
        result.setdefault(int(step), {"sent": 0, "replied": 0, "bounced": 0})["sent"] = count
    outcome = case(
        (Enrollment.status == EnrollmentStatus.REPLIED, "replied"),
        (Enrollment.status == EnrollmentStatus.BOUNCED, "bounced"),
        else_="other",
    )
    rows = db.execute(
        select(Enrollment.steps_sent, outcome, func.count())
        .where(
            Enrollment.campaign_id == campaign_id,
            Enrollment.status.in_((EnrollmentStatus.REPLIED, EnrollmentStatus.BOUNCED)),
        )
        .group_by(Enrollment.steps_sent, outcome)
    )
    for step, kind, count in rows:
        result.setdefault(int(step), {"sent": 0, "replied": 0, "bounced": 0})[kind] = count
    return result


# The Campaigns tab's sort orders (the first is the default).
CAMPAIGN_SORTS = ("created", "name", "activity", "sent")


def _tab_query(user: User, *, search: str, statuses: tuple[CampaignStatus, ...]) -> Select[Any]:
    query = _visible(user).where(Campaign.status.in_(statuses))
    if search:
        query = query.where(func.lower(Campaign.name).contains(search.lower(), autoescape=True))
    return query


def campaigns_tab_page(
    db: Session,
    user: User,
    *,
    search: str,
    statuses: tuple[CampaignStatus, ...],
    sort: str,
    offset: int,
    limit: int,
) -> list[Campaign]:
    """One page of the user's campaigns matching the search and statuses, in the sort order
    (newest, name A to Z, latest activity, most emails sent), with their sending accounts."""
    query = _tab_query(user, search=search, statuses=statuses).options(
        selectinload(Campaign.mailbox)
    )
    if sort == "name":
        order: list[Any] = [func.lower(Campaign.name), Campaign.id]
    elif sort == "activity":
        # The latest of its last email sent and its last status change.
        last_sent = (
            select(func.max(SendLedger.sent_at))
            .where(SendLedger.campaign_id == Campaign.id)
            .correlate(Campaign)
            .scalar_subquery()
        )
        latest = case(
            (last_sent > Campaign.status_changed_at, last_sent), else_=Campaign.status_changed_at
        )
        order = [latest.desc(), Campaign.id.desc()]
    elif sort == "sent":
        sent = (
            select(func.count())
            .where(SendLedger.campaign_id == Campaign.id, SendLedger.status == LedgerStatus.SENT)
            .correlate(Campaign)
            .scalar_subquery()
        )
        order = [sent.desc(), Campaign.id.desc()]
    else:
        order = [Campaign.created_at.desc(), Campaign.id.desc()]
    return list(db.scalars(query.order_by(*order).offset(offset).limit(limit)))


def count_campaigns_tab(
    db: Session, user: User, *, search: str, statuses: tuple[CampaignStatus, ...]
) -> int:
    query = _tab_query(user, search=search, statuses=statuses)
    return db.scalar(select(func.count()).select_from(query.subquery())) or 0


def visible_campaigns_by_id(db: Session, user: User, ids: list[int]) -> list[Campaign]:
    """These of the user's campaigns (others' are left out), as the database has them now."""
    if not ids:
        return []
    return list(
        db.scalars(
            _visible(user)
            .where(Campaign.id.in_(ids))
            .execution_options(populate_existing=True)
            .order_by(Campaign.id)
        )
    )


def enrollments_by_id(db: Session, campaign_id: int, ids: list[int]) -> list[Enrollment]:
    """These recipients of the campaign (ids from elsewhere are left out)."""
    if not ids:
        return []
    return list(
        db.scalars(
            select(Enrollment)
            .where(Enrollment.campaign_id == campaign_id, Enrollment.id.in_(ids))
            .order_by(Enrollment.id)
        )
    )


def user_names(db: Session, ids: list[int]) -> dict[int, str]:
    return {user.id: user.display_name for user in db.scalars(select(User).where(User.id.in_(ids)))}


# --- Uploads kept for the import's mapping page (import_flow.py) ---


def delete_pending_imports(db: Session, user_id: int, campaign_id: int, now: datetime) -> None:
    """The user's expired uploads, and their earlier upload for this campaign."""
    db.execute(
        delete(PendingImport).where(
            PendingImport.user_id == user_id,
            (PendingImport.expires_at <= now) | (PendingImport.campaign_id == campaign_id),
        )
    )


def pending_import(db: Session, user_id: int, campaign_id: int, token: str) -> PendingImport | None:
    """The user's kept upload for this campaign by its token, expired or not."""
    return db.scalar(
        select(PendingImport).where(
            PendingImport.token == token,
            PendingImport.user_id == user_id,
            PendingImport.campaign_id == campaign_id,
        )
    )


# --- Campaign status (service.py) ---


def set_status_if(
    db: Session,
    campaign_id: int,
    allowed: Iterable[CampaignStatus],
    to: CampaignStatus,
    *,
    pause_reason: PauseReason | None,
    now: datetime,
) -> bool:
    """Compare-and-set a campaign's status: True when it was in `allowed` and is now `to`."""
    result = db.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.in_(allowed))
        .values(
            status=to,
            pause_reason=pause_reason,
            status_changed_at=now,
            # Archiving keeps the status it leaves (the row's, in the same statement).
            archived_from=Campaign.status if to is CampaignStatus.ARCHIVED else None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
