"""The bounce-rate guard: a campaign whose latest sends bounce too often pauses itself.

Bounces are delivery-failure notices the sandbox delivers to the sending mailbox, read by the
real dispatcher; the guard pauses at its threshold and never before, tells the owner by email,
writes the `campaign.paused` webhook event, and after a review the campaign resumes like any
other and is judged afresh.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import timedelta
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr
from typing import Any

import pytest
from sqlalchemy import Engine, select

from sendwell.campaigns import service
from sendwell.db import session_scope
from sendwell.dispatch import resuming
from sendwell.models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    PauseReason,
    User,
    WebhookEvent,
)
from tests.conftest import Database, csrf_from
from tests.dispatch.conftest import SENDER, World, linked_world
from tests.mailboxes.conftest import link
from tests.mailboxes.test_reauth import Inbox, smtp  # noqa: F401 - fixture
from tests.sandbox_support import Sandbox
from tests.webhooks.conftest import admin_token, register

ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0)]
TWO_STEPS = [*ONE_STEP, ("", "Following up.", 60)]


@pytest.fixture
def mailed_world(
    database: Database,
    engine: Engine,
    sandbox: Sandbox,
    smtp: tuple[Inbox, int],  # noqa: F811 - the fixture
) -> Iterator[tuple[World, Inbox]]:
    """A world whose server has outgoing mail for notices, and an endpoint for every event."""
    inbox, port = smtp
    with linked_world(
        database,
        engine,
        sandbox,
        lambda client: link(client, SENDER),
        smtp_url=f"smtp://127.0.0.1:{port}?from=sendwell@example.com",
    ) as world:
        register(world, "http://127.0.0.1:9/hooks", ["campaign.paused"])
        yield world, inbox


def people(count: int) -> list[str]:
    return [f"person{n:02d}@example.com" for n in range(1, count + 1)]


def sent_to(world: World) -> dict[str, dict[str, Any]]:
    """The first message each recipient received, by address."""
    found: dict[str, dict[str, Any]] = {}
    for message in world.sent():
        found.setdefault(parseaddr(str(message["to"][0]))[1], message)
    return found


def bounce(world: World, message: dict[str, Any]) -> None:
    world.sandbox.admin(
        "bounce", {"mailbox": SENDER, "to_message_id": message["headers"]["Message-ID"]}
    )


def campaign_of(world: World, campaign_id: int) -> Campaign:
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        db.expunge(campaign)
        return campaign


def set_guards(world: World, campaign_id: int, percent: float, sends: int) -> None:
    """Change the campaign's guard in the editor, as its owner would."""
    page = f"/campaigns/{campaign_id}/edit"
    form = world.client.get(page).text
    assert 'id="bounce_pause_percent"' in form
    campaign = campaign_of(world, campaign_id)
    response = world.client.post(
        page,
        data={
            "csrftoken": csrf_from(form),
            "name": campaign.name,
            "mailbox_id": str(campaign.mailbox_id),
            "start_delay_minutes": "0",
            "timezone": "UTC",
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "step_subject": [ONE_STEP[0][0], ""],
            "step_body": [ONE_STEP[0][1], "Following up."],
            "step_delay": ["0", "1"],
            "step_unit": ["minutes", "hours"],
            "bounce_pause_percent": f"{percent:g}",
            "bounce_pause_min_sends": str(sends),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def paused_events(world: World) -> list[dict[str, Any]]:
    with session_scope(world.factory) as db:
        rows = db.scalars(
            select(WebhookEvent.payload).where(WebhookEvent.type == "campaign.paused")
        ).all()
    return [json.loads(row) for row in rows]


def notices(inbox: Inbox) -> list[Message]:
    return [m for m in inbox.messages if "bounced" in str(m["Subject"])]


def test_defaults_pause_at_one_bounce_in_fifty_sends_and_not_at_forty_nine(
    mailed_world: tuple[World, Inbox],
) -> None:
    world, inbox = mailed_world
    everyone = people(52)
    campaign_id = world.campaign(ONE_STEP, everyone)
    campaign = campaign_of(world, campaign_id)
    assert (campaign.bounce_pause_percent, campaign.bounce_pause_min_sends) == (2.0, 50)
    dispatcher = world.dispatcher()
    world.postpone(campaign_id, everyone[49:], by=timedelta(hours=1))
    dispatcher.run_until_idle()
    first = sent_to(world)
    assert len(first) == 49

    # 1 bounce in 49 sends is over 2 %, but 49 sends are fewer than the 50 it is judged on.
    bounce(world, first[everyone[0]])
    dispatcher.run_until_idle()
    assert campaign_of(world, campaign_id).status is CampaignStatus.ACTIVE
    assert paused_events(world) == []
    assert notices(inbox) == []

    # The 50th send completes the window: 1 in 50 is exactly 2 %, so the campaign pauses
    # before anyone else is emailed.
    world.due_now(campaign_id)
    dispatcher.run_until_idle()
    assert len(sent_to(world)) == 50
    campaign = campaign_of(world, campaign_id)
    assert (campaign.status, campaign.pause_reason) == (
        CampaignStatus.PAUSED,
        PauseReason.BOUNCE_RATE,
    )
    dispatcher.run_until_idle()
    assert len(sent_to(world)) == 50, "nothing goes out while paused"
    (event,) = paused_events(world)
    assert event["pause_reason"] == "bounce_rate"
    assert "1 of the last 50 emails bounced (2.0 %" in event["reason"]


def test_a_bounce_that_reaches_the_campaigns_own_limit_pauses_it(
    mailed_world: tuple[World, Inbox],
) -> None:
    world, inbox = mailed_world
    everyone = people(14)
    campaign_id = world.campaign(TWO_STEPS, everyone, start=False)
    set_guards(world, campaign_id, 20, 10)
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        service.start(db, user, campaign_id)
    dispatcher = world.dispatcher()
    world.postpone(campaign_id, everyone[10:], by=timedelta(hours=1))
    dispatcher.run_until_idle()
    first = sent_to(world)
    assert len(first) == 10

    bounce(world, first[everyone[0]])
    dispatcher.run_until_idle()
    assert campaign_of(world, campaign_id).status is CampaignStatus.ACTIVE  # 1 in 10: 10 %

    bounce(world, first[everyone[1]])
    dispatcher.run_until_idle()
    campaign = campaign_of(world, campaign_id)
    assert (campaign.status, campaign.pause_reason) == (
        CampaignStatus.PAUSED,
        PauseReason.BOUNCE_RATE,
    )

    # The owner sees it on the Campaigns tab, the campaign page and its activity, and by email.
    reason = "Paused because too many recent emails bounced."
    assert reason in html.unescape(world.client.get("/messaging/campaigns").text)
    page = html.unescape(world.client.get(f"/campaigns/{campaign_id}").text)
    assert reason in page
    assert "2 of the last 10 emails bounced (20.0 %; the limit is 20 % over 10 emails)" in page
    (mail,) = notices(inbox)
    assert mail["To"] == "ada@example.com"
    subject = str(make_header(decode_header(str(mail["Subject"]))))
    assert subject == "Paused: too many emails of “Outreach” bounced"
    text = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "2 of the last 10 emails bounced" in text
    assert f"/campaigns/{campaign_id}#recipients" in text
    (event,) = paused_events(world)
    assert (event["pause_reason"], event["campaign"]["status"]) == ("bounce_rate", "paused")
    api = world.client.get(
        f"/api/v1/campaigns/{campaign_id}",
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    ).json()
    assert (api["pause_reason"], api["bounce_pause_percent"], api["bounce_pause_min_sends"]) == (
        "bounce_rate",
        20.0,
        10,
    )

    # Resumed after review, it is judged on what it sends from now on: the two old bounces
    # do not pause it again, and everyone left gets their emails once.
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).first()
        assert user is not None
        resuming.resume(db, user, campaign_id)
    world.due_now(campaign_id)
    dispatcher.run_until_idle()
    world.due_now(campaign_id)
    dispatcher.run_until_idle()
    assert campaign_of(world, campaign_id).status is CampaignStatus.COMPLETED
    assert set(world.sent_by_step(campaign_id)) == {
        (person, step)
        for person in everyone
        for step in (1, 2)
        if not (step == 2 and person in everyone[:2])
    }
    with session_scope(world.factory) as db:
        kinds = db.scalars(
            select(CampaignEvent.kind)
            .where(CampaignEvent.campaign_id == campaign_id)
            .order_by(CampaignEvent.id)
        ).all()
    assert kinds[-3:] == ["paused", "resumed", "completed"]


def test_the_editor_refuses_a_rate_out_of_range_and_keeps_the_campaign(world: World) -> None:
    campaign_id = world.campaign(ONE_STEP, people(1), start=False)
    page = f"/campaigns/{campaign_id}/edit"
    form = world.client.get(page).text
    refused = world.client.post(
        page,
        data={
            "csrftoken": csrf_from(form),
            "name": "Renamed",
            "mailbox_id": str(world.mailbox_id()),
            "start_delay_minutes": "0",
            "timezone": "UTC",
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "step_subject": [ONE_STEP[0][0]],
            "step_body": [ONE_STEP[0][1]],
            "bounce_pause_percent": "0",
            "bounce_pause_min_sends": "50",
        },
    )
    assert refused.status_code == 422
    assert "must be more than 0 % and at most 100 %" in html.unescape(refused.text)
    campaign = campaign_of(world, campaign_id)
    assert (campaign.name, campaign.bounce_pause_percent) == ("Outreach", 2.0)

    api = world.client.put(
        f"/api/v1/campaigns/{campaign_id}",
        json={
            "name": "Outreach",
            "mailbox_id": world.mailbox_id(),
            "steps": [{"subject": ONE_STEP[0][0], "body": ONE_STEP[0][1]}],
            "bounce_pause_min_sends": 0,
        },
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    )
    assert api.status_code == 422
    assert api.json()["error"]["code"] == "invalid_bounce_window"
