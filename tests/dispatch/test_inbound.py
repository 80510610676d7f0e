"""Replies, auto-replies and bounces arriving in the sandbox mailbox between steps.

A reply stops only its sender's sequence; an out-of-office does not, but holds its sender for
a few days (tests/dispatch/test_auto_reply_hold.py); a bounce marks the recipient Bounced and
puts the address on the suppression list, so it cannot be added again.
When every recipient has finished, the campaign is Completed.
"""

from __future__ import annotations

import html
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select

from sendwell.db import session_scope
from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    Suppression,
    SuppressionReason,
)
from tests.conftest import csrf_from
from tests.dispatch.conftest import SENDER, World

# Step 2 waits a minute, so a reply can be delivered between the two steps.
TWO_STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0),
    ("Re: Hello {{ first_name }}", "Following up.", 1),
]


def messages_to(world: World) -> dict[str, list[dict[str, Any]]]:
    received: dict[str, list[dict[str, Any]]] = {}
    for message in world.sent():
        received.setdefault(parseaddr(str(message["to"][0]))[1], []).append(message)
    return received


def campaign_status(world: World, campaign_id: int) -> CampaignStatus:
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign.status


def test_a_reply_stops_only_its_sender_and_an_auto_reply_stops_nobody(world: World) -> None:
    """An auto-reply holds bob (no email for three days) without ending his sequence."""
    emails = ["ann@example.com", "bob@example.com", "cy@example.com"]
    campaign_id = world.campaign(TWO_STEPS, emails)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    first = {email: messages[0] for email, messages in messages_to(world).items()}
    assert set(first) == set(emails)

    world.sandbox.admin(
        "reply",
        {"mailbox": SENDER, "to_message_id": first["ann@example.com"]["headers"]["Message-ID"]},
    )
    world.sandbox.admin(
        "reply",
        {
            "mailbox": SENDER,
            "to_message_id": first["bob@example.com"]["headers"]["Message-ID"],
            "auto_reply": True,
        },
    )
    world.due_now(campaign_id)
    dispatcher.run_until_idle()

    received = messages_to(world)
    assert len(received["ann@example.com"]) == 1
    assert len(received["bob@example.com"]) == 1
    assert len(received["cy@example.com"]) == 2
    assert set(world.sent_by_step(campaign_id)) == {
        ("ann@example.com", 1),
        ("bob@example.com", 1),
        ("cy@example.com", 1),
        ("cy@example.com", 2),
    }
    ann = world.enrollment(campaign_id, "ann@example.com")
    assert ann.status is EnrollmentStatus.REPLIED
    assert ann.status_reason.startswith("Replied on ")
    assert ann.next_due_at is None
    bob = world.enrollment(campaign_id, "bob@example.com")
    assert bob.status is EnrollmentStatus.IN_PROGRESS
    assert bob.held_until is not None
    assert world.enrollment(campaign_id, "cy@example.com").status is EnrollmentStatus.COMPLETED
    assert campaign_status(world, campaign_id) is CampaignStatus.ACTIVE


def test_a_bounce_marks_the_recipient_bounced_and_suppresses_the_address(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    to_ann = messages_to(world)["ann@example.com"][0]

    world.sandbox.admin(
        "bounce", {"mailbox": SENDER, "to_message_id": to_ann["headers"]["Message-ID"]}
    )
    world.due_now(campaign_id)
    dispatcher.run_until_idle()

    received = messages_to(world)
    assert len(received["ann@example.com"]) == 1
    assert len(received["bob@example.com"]) == 2
    ann = world.enrollment(campaign_id, "ann@example.com")
    assert ann.status is EnrollmentStatus.BOUNCED
    assert ann.status_reason.startswith("Bounced on ")
    assert world.enrollment(campaign_id, "bob@example.com").status is EnrollmentStatus.COMPLETED
    assert campaign_status(world, campaign_id) is CampaignStatus.COMPLETED
    with session_scope(world.factory) as db:
        suppressed = db.scalars(select(Suppression)).all()
        assert [(s.email, s.reason) for s in suppressed] == [
            ("ann@example.com", SuppressionReason.BOUNCED)
        ]

    # Adding the address to another campaign is refused, and says why.
    other_id = world.campaign(TWO_STEPS, ["dan@example.com"], start=False)
    page = f"/campaigns/{other_id}"
    token = csrf_from(world.client.get(page).text)
    refused = world.client.post(
        f"{page}/recipients", data={"csrftoken": token, "email": "ann@example.com"}
    )
    text = html.unescape(refused.text)
    assert "ann@example.com was not added: on the suppression list (bounced)" in text
    with session_scope(world.factory) as db:
        added = db.scalars(select(Enrollment.email).where(Enrollment.campaign_id == other_id)).all()
    assert added == ["dan@example.com"]
