"""What the campaign page's recipients table and a recipient's page show: the table from its
query string (search, filters, sort, pages), what each sent step said, and the actions a
recipient's status allows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from sendwell.campaigns import recipient_actions, validation
from sendwell.campaigns import recipient_repository as repo
from sendwell.campaigns.recipient_actions import Action
from sendwell.campaigns.recipient_repository import RecipientFilter
from sendwell.kit.errors import InvalidInput, SendwellError
from sendwell.models import Campaign, Enrollment, EnrollmentStatus, SendLedger, lifecycle
from sendwell.models.lifecycle import EnrollmentEvent

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


def offered_actions(enrollment: Enrollment) -> list[tuple[Action, str]]:
    """The actions a recipient's page offers for their status (Move has its own form)."""
    return [
        (action, label)
        for action, label in ACTION_LABELS.items()
        if _offered(action, enrollment.status)
    ]


def move_targets_for(db: Session, campaign: Campaign, enrollment: Enrollment) -> list[Campaign]:
    """The campaigns a recipient's page offers to move them to, if their status allows it."""
    return repo.move_targets(db, campaign) if _offered(Action.MOVE, enrollment.status) else []


def _offered(action: Action, status: EnrollmentStatus) -> bool:
    event = {
        Action.PAUSE: EnrollmentEvent.PAUSED,
        Action.RESUME: EnrollmentEvent.RESUMED,
        Action.REMOVE: EnrollmentEvent.REMOVED,
        Action.MARK_REPLIED: EnrollmentEvent.MARKED_REPLIED,
        Action.MOVE: EnrollmentEvent.MOVED,
    }[action]
    return lifecycle.enrollment_allows(status, event)
