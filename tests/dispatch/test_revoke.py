"""The user revokes Sendwell's access at Google in the middle of a run.

At most one send attempt fails; the mailbox then needs reauthentication, its active campaigns
are paused for that reason, the claim goes back in line unsent, and nothing more is tried.
"""

from __future__ import annotations

from datetime import timedelta

import httpx

from sendwell.db import session_scope
from sendwell.models import (
    Campaign,
    CampaignStatus,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    MailboxStatus,
    PauseReason,
)
from tests.dispatch.conftest import SENDER, World

ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0)]


class SendCounter:
    """Counts the POSTs that reach the provider's send endpoint, whatever they answer; the
    user revokes access at Google just before send number `revoke_before` goes out."""

    def __init__(self, world: World, revoke_before: int) -> None:
        self.world = world
        self.revoke_before = revoke_before
        self.posts = 0

    def __call__(self, request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path.endswith("/messages/send"):
            self.posts += 1
            if self.posts == self.revoke_before:
                self.world.sandbox.admin("revoke", {"mailbox": SENDER})


def test_revoked_access_mid_run_pauses_and_releases_the_claim_unsent(world: World) -> None:
    emails = [f"person{i}@example.com" for i in range(6)]
    campaign_id = world.campaign(ONE_STEP, emails, min_gap_seconds=0)
    other_id = world.campaign(ONE_STEP, ["other@example.com"], start_delay_minutes=60)
    counter = SendCounter(world, revoke_before=4)
    with httpx.Client(timeout=5, event_hooks={"request": [counter]}) as http:
        # Inbound is read once up front, so the first call to meet the revoked grant is a send.
        dispatcher = world.app_dispatcher(
            world.services_over(http), inbound_interval=timedelta(hours=1)
        )
        dispatcher.run_until_idle()

        assert counter.posts == 4
        assert len(world.sent()) == 3
        with session_scope(world.factory) as db:
            mailbox = db.get(Mailbox, world.mailbox_id())
            assert mailbox is not None
            assert mailbox.status is MailboxStatus.REAUTH_REQUIRED
            for cid in (campaign_id, other_id):
                campaign = db.get(Campaign, cid)
                assert campaign is not None
                assert campaign.status is CampaignStatus.PAUSED
                assert campaign.pause_reason is PauseReason.MAILBOX_REAUTH_REQUIRED

        sent_to = {key[0] for key in world.sent_by_step(campaign_id)}
        assert len(sent_to) == 3
        rows = world.ledger(campaign_id)
        # The refused send and the rest of its batch go back in line, not counted as attempts.
        assert sorted(r.status for r in rows) == [LedgerStatus.RETRY] * 3 + [LedgerStatus.SENT] * 3
        for released in (r for r in rows if r.status is LedgerStatus.RETRY):
            assert released.attempts == 0
            assert released.lease_until is None
        for email in emails:
            enrollment = world.enrollment(campaign_id, email)
            if email in sent_to:
                assert enrollment.status is EnrollmentStatus.COMPLETED
            else:
                assert enrollment.status is EnrollmentStatus.NOT_STARTED
                assert enrollment.next_due_at is not None

        # Nothing more is attempted on that mailbox, however often the loop runs.
        world.due_now(campaign_id)
        for _pass in range(3):
            dispatcher.run_once()
        dispatcher.run_until_idle()
        assert counter.posts == 4
        assert len(world.sent()) == 3

    page = world.client.get(f"/campaigns/{campaign_id}")
    assert "Paused because the sending account needs" in page.text
