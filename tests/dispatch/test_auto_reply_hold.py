"""Automatic replies hold their sender for a few days on every host, then the sequence goes on.

Each recipient's mail system answers the first step the way it would: Gmail's vacation
responder (Auto-Submitted and X-Autoreply), an Exchange inbox rule (its own markers only, as
Outlook rules send them), and a person whose Outlook adds X-Auto-Response-Suppress to an
ordinary reply. The first two are held — no step while held, whatever makes them due — and
their hold is on the recipient pages, in the API and in the activity; the person's reply stops
their sequence. Time passes for Sendwell by moving the holds (and the steps they put off) into
the past; the held recipients then get each remaining step once, threaded.
"""

from __future__ import annotations

import html
from datetime import timedelta

from sqlalchemy import select

from sendwell.db import session_scope
from sendwell.dispatch import repository as dispatch_repo
from sendwell.kit.clock import utcnow
from sendwell.models import CampaignEvent, CampaignStatus, Enrollment, EnrollmentStatus
from tests.dispatch.conftest import World
from tests.dispatch.hosts import PEOPLE, Host
from tests.dispatch.test_every_host import (
    THREE_STEPS,
    assert_once_and_threaded,
    campaign_of,
    run_until,
)
from tests.webhooks.conftest import admin_token

GMAIL_VACATION = {"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}
EXCHANGE_RULE = {
    "X-MS-Exchange-Inbox-Rules-Loop": "bob@example.com",
    "X-MS-Exchange-Generated-Message-Source": "Mailbox Rules Agent",
    "X-Auto-Response-Suppress": "All",
}
OUTLOOK_PERSON = {"X-Auto-Response-Suppress": "All"}
ANN, BOB, CY = PEOPLE


def status(world: World, campaign_id: int, person: str) -> EnrollmentStatus:
    return world.enrollment(campaign_id, person).status


def holds_end(world: World, campaign_id: int, days: float) -> None:
    """That many days pass for the held recipients: their holds, and the steps they put
    off, move into the past."""
    shift = timedelta(days=days)
    with session_scope(world.factory) as db:
        for enrollment in db.scalars(
            select(Enrollment).where(
                Enrollment.campaign_id == campaign_id, Enrollment.held_until.is_not(None)
            )
        ):
            assert enrollment.held_until is not None
            enrollment.held_until -= shift
            if enrollment.next_due_at is not None:
                enrollment.next_due_at -= shift


def activity(world: World, campaign_id: int, kind: str) -> list[str]:
    with session_scope(world.factory) as db:
        return list(
            db.scalars(
                select(CampaignEvent.reason)
                .where(CampaignEvent.campaign_id == campaign_id, CampaignEvent.kind == kind)
                .order_by(CampaignEvent.id)
            )
        )


def test_auto_replies_hold_their_senders_then_the_sequence_goes_on(
    host_world: tuple[World, Host],
) -> None:
    world, host = host_world
    campaign_id = world.campaign(THREE_STEPS, PEOPLE, sender=host.address)
    assert campaign_of(world, campaign_id).auto_reply_hold_days == 3
    world.dispatcher().run_until_idle()
    first = {person: host.received(person)[0] for person in PEOPLE}
    answered = utcnow()
    host.answer(first[ANN], "Automatic reply: " + first[ANN].subject, GMAIL_VACATION)
    host.answer(first[BOB], "Out of office: " + first[BOB].subject, EXCHANGE_RULE)
    host.answer(first[CY], "", OUTLOOK_PERSON)

    def read() -> bool:
        return status(world, campaign_id, CY) is EnrollmentStatus.REPLIED and all(
            world.enrollment(campaign_id, p).held_until is not None for p in (ANN, BOB)
        )

    run_until(world, campaign_id, read)
    # Whatever makes them due, held recipients get nothing.
    for _ in range(3):
        world.due_now(campaign_id)
        world.dispatcher().run_until_idle()
    assert [len(host.received(p)) for p in PEOPLE] == [1, 1, 1]
    assert [status(world, campaign_id, p) for p in PEOPLE] == [
        EnrollmentStatus.IN_PROGRESS,
        EnrollmentStatus.IN_PROGRESS,
        EnrollmentStatus.REPLIED,
    ]

    # The query the Resume preview lists them with: each with when their hold ends.
    with session_scope(world.factory) as db:
        held = [
            (e.email, until)
            for e, until in dispatch_repo.held_enrollments(db, campaign_id, utcnow())
        ]
    assert [email for email, _until in held] == [ANN, BOB]
    for _email, until in held:
        assert answered - timedelta(minutes=1) + timedelta(days=3) <= until
        assert until <= utcnow() + timedelta(days=3)

    # What the owner sees: the list, the recipient's page, the API and the activity.
    page = html.unescape(world.client.get(f"/campaigns/{campaign_id}").text)
    assert page.count("Held until") == 2
    ann_id = world.enrollment(campaign_id, ANN).id
    ann_page = html.unescape(world.client.get(f"/campaigns/{campaign_id}/recipients/{ann_id}").text)
    assert "Held until" in ann_page
    assert "Automatic reply on" in ann_page
    recipients = world.client.get(
        f"/api/v1/campaigns/{campaign_id}/recipients",
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    ).json()
    by_email = {r["email"]: r for r in recipients}
    assert by_email[ANN]["held_until"]
    assert by_email[BOB]["held_until"]
    assert by_email[CY]["held_until"] is None
    held_lines = activity(world, campaign_id, "recipient_held")
    assert [line.split(" ", 1)[0] for line in held_lines] == [ANN, BOB]
    assert "answered with an automatic reply" in held_lines[0]

    # Three days later the holds end: the rest of the sequence goes, each step once.
    holds_end(world, campaign_id, 3)
    run_until(world, campaign_id, lambda: all(len(host.received(p)) == 3 for p in (ANN, BOB)))
    for person in (ANN, BOB):
        assert_once_and_threaded(host.received(person), 3)
        assert world.enrollment(campaign_id, person).held_until is None
    assert len(host.received(CY)) == 1
    ended = activity(world, campaign_id, "hold_ended")
    assert sorted(line.split("'", 1)[0] for line in ended) == [ANN, BOB]
    assert campaign_of(world, campaign_id).status is CampaignStatus.COMPLETED
