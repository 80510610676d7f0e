"""The campaign page's recipients table (search, filters, sort, pages in the query string) and
the actions on recipients from it and from a recipient's page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import current_user
from sendwell.campaigns import recipient_actions, service, validation
from sendwell.campaigns import recipient_repository as repo
from sendwell.campaigns.recipient_actions import Action
from sendwell.campaigns.recipient_repository import RecipientFilter
from sendwell.dispatch import pausing
from sendwell.kit.errors import InvalidInput, SendwellError
from sendwell.models import Campaign, Enrollment, EnrollmentStatus, SendLedger, User, lifecycle
from sendwell.models.lifecycle import EnrollmentEvent
from sendwell.web.deps import get_db
from sendwell.web.pages import redirect_with_flash

router = APIRouter()

PAGE_SIZE = 50
# The query string keys the table keeps between pages, filters and actions.
TABLE_KEYS = ("q", "status", "steps", "domain", "sort")
SORT_CHOICES = (
    ("", "Added first"),
    ("email", "Email, A to Z"),
    ("-email", "Email, Z to A"),
    ("status", "Status"),
    ("step", "Fewest steps sent"),
    ("-step", "Most steps sent"),
    ("-last_sent", "Last sent, newest"),
    ("last_sent", "Last sent, oldest"),
)
ACTION_LABELS = {
    Action.PAUSE: "Pause",
    Action.RESUME: "Resume",
    Action.REMOVE: "Remove",
    Action.MARK_REPLIED: "Mark as replied",
}


@dataclass
class RecipientsTable:
    """What `campaigns/_recipients_table.html` shows."""

    rows: list[Enrollment]
    total: int
    page: int
    pages: int
    chosen: dict[str, str]
    error: str = ""
    move_targets: list[Campaign] = field(default_factory=list)
    sort_choices: tuple[tuple[str, str], ...] = SORT_CHOICES

    def link(self, **changes: object) -> str:
        """This table's query string with some keys changed (empty values dropped)."""
        values: dict[str, object] = {**self.chosen, "page": self.page, **changes}
        kept = {k: v for k, v in values.items() if v not in ("", None, 1)}
        return "?" + urlencode(kept) if kept else "?"

    @property
    def filtered(self) -> bool:
        return any(self.chosen.values())


def recipients_table(
    db: Session, campaign: Campaign, params: Mapping[str, str], page: int
) -> RecipientsTable:
    """The table for the campaign page, from its query string; a bad filter is said, not raised."""
    chosen = {key: params.get(key, "").strip()[:200] for key in TABLE_KEYS}
    error = ""
    try:
        wanted = _filter(chosen)
    except InvalidInput as problem:
        error, wanted = problem.message, RecipientFilter()
    total = repo.count_filtered(db, campaign.id, wanted)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    rows = repo.filtered(db, campaign.id, wanted, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return RecipientsTable(
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        chosen=chosen,
        error=error,
        move_targets=repo.move_targets(db, campaign),
    )


def _filter(chosen: dict[str, str]) -> RecipientFilter:
    steps = chosen["steps"]
    if steps and not steps.isdigit():
        raise InvalidInput("Steps sent must be a whole number.", code="bad_step")
    return recipient_actions.recipient_filter(
        status=chosen["status"],
        step=int(steps) if steps else None,
        domain=chosen["domain"],
        q=chosen["q"],
        sort=chosen["sort"],
    )


@router.post("/campaigns/{campaign_id}/recipients/actions")
def recipient_action(
    request: Request,
    campaign_id: int,
    action: str = Form(""),
    ids: list[int] = Form([]),
    to_campaign_id: int | None = Form(None),
    back: str = Form(""),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    """Pause, resume, remove, mark as replied or move the chosen recipients, then go back to
    the table (with its filters) or the recipient's page."""
    campaign = service.get_campaign(db, user, campaign_id)  # someone else's: a 404 page
    target = _back(campaign.id, back)
    try:
        chosen = Action(action)
    except ValueError:
        return redirect_with_flash(request, target, "Choose an action.", kind="error")
    try:
        report = pausing.act_on_recipients(
            db,
            request.app.state.session_factory,
            user,
            campaign.id,
            action=chosen,
            ids=ids,
            to_campaign_id=to_campaign_id,
        )
    except SendwellError as error:
        return redirect_with_flash(request, target, error.message, kind="error")
    return redirect_with_flash(
        request, target, report.sentence(), kind="warning" if report.refused else "success"
    )


def _back(campaign_id: int, back: str) -> str:
    """Where to return: a page of this campaign (the table with its filters, or a recipient),
    never anywhere else."""
    own = f"/campaigns/{campaign_id}"
    ours = back == own or back.startswith((own + "?", own + "#", own + "/recipients/"))
    if ours and "//" not in back and "\\" not in back:
        return back
    return own + "#recipients"


@dataclass(frozen=True)
class SentStep:
    """A step as it went to one recipient: the subject kept when it was sent, and the body
    rendered for them from the step."""

    position: int
    row: SendLedger
    subject: str
    body: str
    problem: str = ""


def sent_steps(
    db: Session, campaign: Campaign, enrollment: Enrollment, ledger: dict[int, SendLedger]
) -> list[SentStep]:
    """What each sent step said to this recipient.

    The ledger keeps the subject as sent; the body is not kept, so it is the step's template
    rendered with this recipient's values now (the same values as when it went, unless the
    step was edited since).
    """
    shown: list[SentStep] = []
    for position, row in sorted(ledger.items()):
        if row.sent_at is None:
            continue
        try:
            rendered, _who = validation.preview(db, campaign, position, enrollment.id)
        except SendwellError as error:
            shown.append(SentStep(position, row, row.subject, "", error.message))
            continue
        shown.append(SentStep(position, row, row.subject or rendered.subject, rendered.body))
    return shown


def recipient_page_context(
    db: Session, campaign: Campaign, enrollment: Enrollment, ledger: dict[int, SendLedger]
) -> dict[str, Any]:
    """The recipient page's parts that this module adds: what was sent and the actions."""
    status = enrollment.status
    return {
        "sent_steps": sent_steps(db, campaign, enrollment, ledger),
        "recipient_actions": [
            (action, label) for action, label in ACTION_LABELS.items() if _offered(action, status)
        ],
        "move_targets": repo.move_targets(db, campaign) if _offered(Action.MOVE, status) else [],
    }


def _offered(action: Action, status: EnrollmentStatus) -> bool:
    event = {
        Action.PAUSE: EnrollmentEvent.PAUSED,
        Action.RESUME: EnrollmentEvent.RESUMED,
        Action.REMOVE: EnrollmentEvent.REMOVED,
        Action.MARK_REPLIED: EnrollmentEvent.MARKED_REPLIED,
        Action.MOVE: EnrollmentEvent.MOVED,
    }[action]
    return lifecycle.enrollment_allows(status, event)
