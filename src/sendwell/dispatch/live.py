"""What the live pages poll: a campaign page's numbers, status, next email, chart and the
recipient rows it shows; the Campaigns tab's rows; one recipient's sequence.

Each answer carries the cells already rendered by the same macros the page uses
(`templates/campaigns/_live.html`), so a page and its update never disagree, and reads only
what changed since the page asked last where that is cheap to know (the chart is drawn again
only when the number sent changed).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from sendwell.campaigns import repository as repo
from sendwell.campaigns import service
from sendwell.campaigns.chart import daily_sends_chart
from sendwell.dispatch import forecast
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import NotFound, SendwellError
from sendwell.models import Campaign, Mailbox, User
from sendwell.web.pages import templates

if TYPE_CHECKING:
    from sendwell.mailboxes.provider_services import ProviderServices

# At most this many rows (recipients or campaigns) are asked about at once: a page's worth.
MAX_IDS = 200
# Actions the campaign page's buttons lead to, by status (the rest are hidden when they no
# longer apply).
PAGE_ACTIONS = ("start", "resume", "pause", "duplicate", "archive", "restore")


def host_interval_of(services: ProviderServices) -> forecast.HostInterval:
    """The shortest time each mailbox's host allows between two sends."""

    def interval(mailbox: Mailbox) -> timedelta:
        try:
            return services.mail_host(mailbox.provider).min_send_interval
        except SendwellError:
            return timedelta(0)  # a provider this server no longer offers

    return interval


def parse_ids(value: str) -> list[int]:
    """Row ids from the page ("12,13,14"); anything that is not one is left out."""
    found = []
    for part in value.split(",")[:MAX_IDS]:
        part = part.strip()
        if part.isascii() and part.isdigit() and len(part) < 12:
            found.append(int(part))
    return found


def _cells() -> Any:
    return templates.env.get_template("campaigns/_live.html").module


def campaign_page(
    db: Session,
    user: User,
    campaign_id: int,
    *,
    enrollment_ids: list[int],
    known_sent: int | None,
    host_interval: forecast.HostInterval,
) -> dict[str, Any]:
    """A campaign page's live parts."""
    campaign = service.get_campaign(db, user, campaign_id)
    now = utcnow()
    counts = repo.counts_for(db, [campaign.id])[campaign.id]
    rows = repo.enrollments_by_id(db, campaign.id, enrollment_ids)
    cells = _cells()
    queues: forecast.Queues = {}
    shown = forecast.for_enrollments(
        db, campaign, rows, now=now, host_interval=host_interval, queues=queues
    )
    next_send = forecast.for_campaigns(
        db, [campaign], now=now, host_interval=host_interval, queues=queues
    )[campaign.id]
    answer: dict[str, Any] = {
        "status": campaign.status.value,
        "status_label": service.status_label(campaign),
        "pause_words": service.pause_reason_words(campaign),
        "counts": counts,
        "next": next_send.payload(),
        "next_html": str(cells.campaign_next(next_send)),
        "actions": _page_actions(campaign),
        "finished": campaign.status.value in ("completed", "archived"),
        "rows": [
            {
                "id": row.id,
                "status_html": str(cells.recipient_status(row, shown[row.id], now)),
                "steps_sent": f"{row.steps_sent} / {len(campaign.steps)}",
                "last_sent_html": str(cells.last_sent(row)),
                "next_html": str(cells.next_email(shown[row.id])),
            }
            for row in rows
        ],
    }
    if known_sent != counts["sent"]:
        since = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)
        chart = daily_sends_chart(repo.daily_activity(db, campaign.id, since), today=now.date())
        answer["chart_html"] = str(cells.chart_body(chart))
    return answer


def campaigns_tab(
    db: Session, user: User, campaign_ids: list[int], *, host_interval: forecast.HostInterval
) -> dict[str, Any]:
    """The Campaigns tab's rows that the page shows."""
    campaigns = repo.visible_campaigns_by_id(db, user, campaign_ids)
    now = utcnow()
    counts = repo.counts_for(db, [c.id for c in campaigns])
    next_sends = forecast.for_campaigns(db, campaigns, now=now, host_interval=host_interval)
    cells = _cells()
    return {
        "campaigns": [
            {
                "id": c.id,
                "status": c.status.value,
                "status_html": str(
                    cells.campaign_status(c, service.status_label(c), service.pause_reason_words(c))
                ),
                "progress_html": str(cells.campaign_progress(counts[c.id], next_sends[c.id])),
                "replied": counts[c.id]["replied"],
                "menu_html": str(cells.menu_items(c, service.menu_actions(c))),
            }
            for c in campaigns
        ]
    }


def recipient_page(
    db: Session,
    user: User,
    campaign_id: int,
    enrollment_id: int,
    *,
    host_interval: forecast.HostInterval,
) -> dict[str, Any]:
    """One recipient's status, next email and sequence."""
    campaign = service.get_campaign(db, user, campaign_id)
    enrollment = repo.get_enrollment(db, campaign.id, enrollment_id)
    if enrollment is None:
        raise NotFound("This campaign has no such recipient.", code="unknown_recipient")
    now = utcnow()
    shown = forecast.for_enrollments(
        db, campaign, [enrollment], now=now, host_interval=host_interval
    )[enrollment.id]
    ledger = {row.step_position: row for row in repo.ledger_for(db, enrollment.id)}
    cells = _cells()
    return {
        "status": enrollment.status.value,
        "label": shown.label,
        "badge": shown.badge,
        "next": shown.payload(),
        "steps": [
            {
                "step": step.position,
                "state_html": str(
                    cells.sequence_state(ledger.get(step.position), step, enrollment, shown)
                ),
                "when_html": str(cells.sequence_when(ledger.get(step.position))),
            }
            for step in campaign.steps
        ],
    }


def recipient_forecasts(
    db: Session,
    campaign: Campaign,
    rows: list[Any],
    *,
    host_interval: forecast.HostInterval,
) -> dict[int, forecast.Forecast]:
    """The forecasts a page shows for its recipient rows (the first render)."""
    return forecast.for_enrollments(db, campaign, rows, now=utcnow(), host_interval=host_interval)


def _page_actions(campaign: Campaign) -> list[str]:
    allowed = {action for action, _label in service.menu_actions(campaign)}
    return [action for action in PAGE_ACTIONS if action in allowed]
