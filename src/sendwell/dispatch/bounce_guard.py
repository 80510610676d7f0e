"""The bounce-rate guard: a campaign whose latest sends bounce too often pauses itself.

What "the latest sends" are, precisely: the campaign's most recent N sends that were either
delivered (the host accepted them: ledger `sent`) or refused for their recipient at sending
(ledger `failed` with the recipient Bounced), where N is the campaign's
`bounce_pause_min_sends`, counting only sends made after the guard last paused the campaign
(`bounce_window_start`), so a campaign resumed after review is judged on what it sends next.
A send is a hard bounce when its recipient is Bounced (a delivery-failure notice naming the
recipient, or the host refusing the address); a recipient counts once, at their latest send
in the window. Delays, auto-replies and a host's own sending-limit bounces are not bounces.

The guard judges only a full window (N sends), and pauses when bounces x 100 >= percent x N:
at the threshold, never before it. It looks after every bounce, and after every delivered
send while the campaign has bounced recipients (the send that completes the window can be
the one that makes the rate count).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from sendwell.campaigns import service as campaigns
from sendwell.campaigns.guards import percent_text
from sendwell.dispatch import repository as repo
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict
from sendwell.kit.logging import get_logger
from sendwell.models import Campaign, CampaignStatus, EnrollmentStatus
from sendwell.models.campaign import PauseReason

log = get_logger(__name__)


@dataclass(frozen=True)
class BounceWindow:
    """The campaign's latest sends as the guard sees them."""

    sends: int
    bounced: int
    needed: int
    percent: float

    @property
    def full(self) -> bool:
        return self.sends >= self.needed

    @property
    def over_limit(self) -> bool:
        # Whole numbers on one side: 1 bounce in 50 sends is exactly 2 %, and pauses.
        return self.full and self.bounced * 100 >= self.percent * self.sends - 1e-9

    def words(self) -> str:
        rate = self.bounced * 100 / self.sends if self.sends else 0.0
        return (
            f"{self.bounced} of the last {self.sends} emails bounced ({rate:.1f} %; the limit "
            f"is {percent_text(self.percent)} % over {self.needed} emails)."
        )


def window_of(db: Session, campaign: Campaign) -> BounceWindow:
    """The campaign's bounce rate over its latest sends (see the module's definition)."""
    rows = repo.latest_sends(
        db, campaign.id, campaign.bounce_window_start, campaign.bounce_pause_min_sends
    )
    bounced = {e for e, _at, status in rows if status is EnrollmentStatus.BOUNCED}
    return BounceWindow(
        len(rows), len(bounced), campaign.bounce_pause_min_sends, campaign.bounce_pause_percent
    )


def after_delivery(db: Session, campaign_id: int) -> None:
    """A send was delivered: it may complete a window that already holds enough bounces."""
    if repo.has_bounced(db, campaign_id):
        pause_if_bouncing(db, campaign_id)


def pause_if_bouncing(db: Session, campaign_id: int) -> bool:
    """Pause an active campaign whose latest sends bounce at or over its limit, in this unit
    of work (event, webhook and its owner's email with it: the pause's detail is the window
    in words)."""
    db.flush()
    campaign = db.get(Campaign, campaign_id)
    if campaign is None or campaign.status is not CampaignStatus.ACTIVE:
        return False
    window = window_of(db, campaign)
    if not window.over_limit:
        return False
    try:
        campaigns.pause(
            db, None, campaign_id, reason=PauseReason.BOUNCE_RATE, detail=window.words()
        )
    except Conflict:
        return False  # paused, completed or changed by someone else meanwhile
    campaign.bounce_window_start = utcnow()
    log.info(
        "bounce_rate_pause", campaign_id=campaign_id, bounced=window.bounced, sends=window.sends
    )
    return True
