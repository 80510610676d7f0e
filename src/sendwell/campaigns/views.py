"""What the campaign pages show: the Campaigns tab, the editor, a campaign's page, one
recipient's page and a step as a recipient receives it, each as the view model its template
renders, built from the session, the signed-in user and the request's inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from sendwell.campaigns import recipients_views, service, validation, wording
from sendwell.campaigns import repository as repo
from sendwell.campaigns.chart import Chart, daily_sends_chart
from sendwell.campaigns.forms import CampaignForm
from sendwell.campaigns.importer import ImportReport
from sendwell.campaigns.recipient_actions import Action
from sendwell.campaigns.recipients_views import RecipientsTable, SentStep
from sendwell.campaigns.schedule import DAYS, common_time_zones, days_words
from sendwell.campaigns.tab import SORTS, STATUS_FILTERS, TabFilters, campaigns_page
from sendwell.campaigns.templates import RenderedStep
from sendwell.delegations import service as delegations
from sendwell.dispatch import forecast, live, test_send
from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.dispatch.resume import Choice
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import NotFound, SendwellError
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.models import (
    Campaign,
    CampaignEvent,
    Enrollment,
    EnrollmentStatus,
    Mailbox,
    SendLedger,
    Snippet,
    User,
)
from sendwell.snippets import service as snippet_service

# The words and helpers a template calls are fields too, each made by a factory: a plain
# default would live on the class, and a function there reads back as a method of the view.

# A step as a recipient receives it lists this many recipients to choose from.
RECIPIENTS_LISTED = 200


@dataclass(frozen=True)
class CampaignsTab:
    """`messaging/campaigns.html`: one page of the user's campaigns that match the filters."""

    page: int
    pages: int
    total: int
    first: int
    campaigns: list[Campaign]
    counts: dict[int, dict[str, int]]
    filters: TabFilters
    # Whether there is anything to find (else the tab invites a first campaign).
    has_any: bool
    next_sends: dict[int, forecast.Forecast]
    # Admins see whose each campaign is.
    owners: dict[int, str]
    tab: str = field(default="campaigns", init=False)
    status_label: Callable[[Campaign], str] = field(
        default_factory=lambda: service.status_label, init=False
    )
    pause_words: Callable[[Campaign], str] = field(
        default_factory=lambda: service.pause_reason_words, init=False
    )
    menu_actions: Callable[[Campaign], list[tuple[str, str]]] = field(
        default_factory=lambda: service.menu_actions, init=False
    )
    status_filters: Mapping[str, object] = field(default_factory=lambda: STATUS_FILTERS, init=False)
    sorts: Mapping[str, str] = field(default_factory=lambda: SORTS, init=False)


def campaigns_tab(
    db: Session,
    user: User,
    services: ProviderServices,
    *,
    page: str,
    search: str,
    status: str,
    sort: str,
) -> CampaignsTab:
    filters = TabFilters.parse(search, status, sort)
    shown = campaigns_page(db, user, filters, page)
    return CampaignsTab(
        page=shown.number,
        pages=shown.pages,
        total=shown.total,
        first=shown.first,
        campaigns=shown.campaigns,
        counts=repo.counts_for(db, [c.id for c in shown.campaigns]),
        filters=filters,
        has_any=bool(shown.total) or bool(repo.count_visible_campaigns(db, user)),
        next_sends=forecast.for_campaigns(
            db, shown.campaigns, now=utcnow(), host_interval=live.host_interval_of(services)
        ),
        owners=repo.user_names(db, sorted({c.owner_id for c in shown.campaigns}))
        if user.is_admin
        else {},
    )


@dataclass(frozen=True)
class Editor:
    """`campaigns/editor.html`: a new or saved campaign's form, with the accounts it may send
    from and the workspace's snippets."""

    form: CampaignForm
    campaign: Campaign | None
    mailboxes: list[Mailbox]
    # A teammate's account: whose it is.
    whose: dict[int, str]
    error: str
    time_zones: list[str]
    form_posted: bool
    snippets: list[Snippet]
    days: tuple[str, ...] = field(default=DAYS, init=False)


def editor(
    db: Session,
    user: User,
    form: CampaignForm,
    *,
    campaign: Campaign | None,
    posted: bool,
    error: str = "",
) -> Editor:
    # The accounts its owner may send from: their own and teammates' that approved them.
    owner = db.get(User, campaign.owner_id) if campaign is not None else user
    accounts = delegations.sendable_mailboxes(db, owner or user)
    if campaign is not None and campaign.mailbox_id not in {m.id for m in accounts}:
        accounts.append(campaign.mailbox)
    whose = {
        m.id: teammate.display_name
        for m in accounts
        if owner is not None
        and m.owner_id != owner.id
        and (teammate := db.get(User, m.owner_id)) is not None
    }
    return Editor(
        form=form,
        campaign=campaign,
        mailboxes=accounts,
        whose=whose,
        error=error,
        time_zones=common_time_zones(form.timezone),
        form_posted=posted,
        snippets=snippet_service.snippets(db, user),
    )


@dataclass(frozen=True)
class CampaignPage:
    """`campaigns/detail.html`: a campaign's counts, recipients, preview, chart and history."""

    campaign: Campaign
    counts: dict[str, int]
    table: RecipientsTable
    forecasts: dict[int, forecast.Forecast]
    next_send: forecast.Forecast
    # The preview's choice of recipients: this page of the unfiltered list.
    enrollments: list[Enrollment]
    events: list[CampaignEvent]
    status_label: str
    pause_words: str
    after_pause: str
    preview: RenderedStep | None
    preview_error: str
    previewed: Enrollment | None
    preview_step: int
    problems: list[validation.Problem]
    problem_total: int
    chart: Chart
    by_step: dict[int, dict[str, int]]
    import_report: ImportReport | None
    import_error: str
    now: datetime
    enrollment_labels: Mapping[EnrollmentStatus, str] = field(
        default_factory=lambda: service.ENROLLMENT_LABELS, init=False
    )
    schedule_days_words: Callable[[str], str] = field(
        default_factory=lambda: days_words, init=False
    )
    event_words: Callable[[str], str] = field(
        default_factory=lambda: wording.event_words, init=False
    )


def campaign_page(
    db: Session,
    user: User,
    services: ProviderServices,
    campaign_id: int,
    *,
    params: Mapping[str, str],
    step: int = 1,
    recipient: int = 0,
    page: int = 1,
    problems: list[validation.Problem] | None = None,
    problem_total: int = 0,
    import_report: ImportReport | None = None,
    import_error: str = "",
) -> CampaignPage:
    """The page, its recipients table from the query string's `params`."""
    campaign = service.get_campaign(db, user, campaign_id)
    page = max(page, 1)
    preview, preview_error, previewed = None, "", None
    if campaign.steps:
        try:
            preview, previewed = validation.preview(db, campaign, step, recipient or None)
        except SendwellError as error:
            preview_error = error.message
    today = utcnow().date()
    since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)
    rows = repo.daily_activity(db, campaign.id, since)
    table = recipients_views.recipients_table(db, campaign, params, page)
    interval = live.host_interval_of(services)
    queues: forecast.Queues = {}
    return CampaignPage(
        campaign=campaign,
        counts=repo.counts_for(db, [campaign.id])[campaign.id],
        table=table,
        forecasts=forecast.for_enrollments(
            db, campaign, table.rows, now=utcnow(), host_interval=interval, queues=queues
        ),
        next_send=forecast.for_campaigns(
            db, [campaign], now=utcnow(), host_interval=interval, queues=queues
        )[campaign.id],
        enrollments=repo.enrollments(
            db,
            campaign.id,
            offset=(page - 1) * recipients_views.PAGE_SIZE,
            limit=recipients_views.PAGE_SIZE,
        ),
        events=repo.events(db, campaign.id),
        status_label=service.status_label(campaign),
        pause_words=service.pause_reason_words(campaign),
        after_pause=Choice(campaign.catch_up, campaign.catch_up_skip_days).words,
        preview=preview,
        preview_error=preview_error,
        previewed=previewed,
        preview_step=step,
        problems=problems or [],
        problem_total=problem_total,
        chart=daily_sends_chart(rows, today=today),
        by_step=repo.outcomes_by_step(db, campaign.id),
        import_report=import_report,
        import_error=import_error,
        now=utcnow(),
    )


@dataclass(frozen=True)
class RecipientPage:
    """`campaigns/recipient.html`: one recipient's sequence, each step's state, when it went
    and why it stopped, what each sent step said, and the actions their status allows."""

    campaign: Campaign
    enrollment: Enrollment
    ledger: dict[int, SendLedger]
    now: datetime
    forecast: forecast.Forecast
    sent_steps: list[SentStep]
    recipient_actions: list[tuple[Action, str]]
    move_targets: list[Campaign]
    labels: Mapping[EnrollmentStatus, str] = field(
        default_factory=lambda: service.ENROLLMENT_LABELS, init=False
    )


def recipient_page(
    db: Session, user: User, services: ProviderServices, campaign_id: int, enrollment_id: int
) -> RecipientPage:
    campaign = service.get_campaign(db, user, campaign_id)
    enrollment = repo.get_enrollment(db, campaign.id, enrollment_id)
    if enrollment is None:
        raise NotFound("This campaign has no such recipient.", code="unknown_recipient")
    ledger = {row.step_position: row for row in repo.ledger_for(db, enrollment.id)}
    shown = live.recipient_forecasts(
        db, campaign, [enrollment], host_interval=live.host_interval_of(services)
    )
    return RecipientPage(
        campaign=campaign,
        enrollment=enrollment,
        ledger=ledger,
        now=utcnow(),
        forecast=shown[enrollment.id],
        sent_steps=recipients_views.sent_steps(db, campaign, enrollment, ledger),
        recipient_actions=recipients_views.offered_actions(enrollment),
        move_targets=recipients_views.move_targets_for(db, campaign, enrollment),
    )


@dataclass(frozen=True)
class MessagePage:
    """`campaigns/message.html`: a step as one recipient (or the sample recipient) receives
    it, with the addresses "Send a test" may go to."""

    campaign: Campaign
    mailbox: Mailbox | None
    message: test_send.Composed | None
    error: str
    step: int
    recipient: int
    recipients: list[Enrollment]
    addresses: list[str]
    sample: Mapping[str, object] = field(
        default_factory=lambda: test_send.SAMPLE_RECIPIENT, init=False
    )
    per_minute: int = field(default=test_send.TESTS_PER_MINUTE, init=False)


def message_page(
    db: Session,
    user: User,
    links: UnsubscribeLinks,
    campaign_id: int,
    *,
    step: int,
    recipient: int,
) -> MessagePage:
    campaign = service.get_campaign(db, user, campaign_id)
    mailbox = mailbox_repo.get_mailbox(db, campaign.mailbox_id)
    message, error = None, ""
    try:
        message = test_send.compose(db, campaign, links, step=step, recipient_id=recipient or None)
    except SendwellError as problem:
        error = problem.message
    return MessagePage(
        campaign=campaign,
        mailbox=mailbox,
        message=message,
        error=error,
        step=step,
        recipient=recipient,
        recipients=repo.enrollments(db, campaign.id, offset=0, limit=RECIPIENTS_LISTED),
        addresses=test_send.allowed_addresses(db, user, mailbox),
    )
