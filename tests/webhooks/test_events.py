"""Every event type, written by the change that causes it and delivered after it commits."""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from sqlalchemy import select

from sendwell.campaigns import service as campaigns
from sendwell.db import session_scope
from sendwell.dispatch.unsubscribe import unsubscribe
from sendwell.mailboxes.tasks import check_connections
from sendwell.models import User
from sendwell.webhooks.service import EVENT_TYPES
from tests.dispatch.conftest import SENDER, World
from tests.mailboxes.conftest import link
from tests.webhooks.conftest import Receiver, admin_token, deliverer, register

TWO_STEPS = [("Hello {{ first_name }}", "Hi.", 0), ("Re: Hello {{ first_name }}", "Again.", 60)]


def delivered(receiver: Receiver, prefix: str) -> list[dict[str, Any]]:
    return [r.event for r in receiver.accepted() if r.event["type"].startswith(prefix)]


def test_mailbox_connection_changes(world: World, receiver: Receiver) -> None:
    register(world, f"{receiver.url}/in", [e for e in EVENT_TYPES if e.startswith("mailbox.")])
    mailbox_id = world.mailbox_id()

    world.sandbox.admin("revoke", {"mailbox": SENDER})
    check_connections(world.factory, world.services)
    link(world.client, SENDER)
    removed = world.client.delete(
        f"/api/v1/mailboxes/{mailbox_id}",
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    )
    assert removed.status_code == 200
    link(world.client, SENDER)
    deliverer(world).deliver_due()

    events = delivered(receiver, "mailbox.")
    assert [(e["type"], e["data"]["previous_status"]) for e in events] == [
        ("mailbox.reauth_required", "connected"),
        ("mailbox.reconnected", "reauth_required"),
        ("mailbox.disconnected", "connected"),
        ("mailbox.connected", "disconnected"),
    ]
    assert {e["data"]["mailbox"]["id"] for e in events} == {mailbox_id}
    assert events[0]["data"]["reason"]
    assert events[-1]["data"]["mailbox"]["status"] == "connected"


def test_replies_bounces_unsubscribes_and_completion(world: World, receiver: Receiver) -> None:
    register(world, f"{receiver.url}/in", list(EVENT_TYPES))
    emails = ["ann@example.com", "bob@example.com", "cy@example.com"]
    campaign_id = world.campaign(TWO_STEPS, emails)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    first = {parseaddr(str(m["to"][0]))[1]: m for m in world.sent()}

    world.sandbox.admin(
        "reply",
        {"mailbox": SENDER, "to_message_id": first["ann@example.com"]["headers"]["Message-ID"]},
    )
    world.sandbox.admin(
        "bounce",
        {"mailbox": SENDER, "to_message_id": first["bob@example.com"]["headers"]["Message-ID"]},
    )
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).one()
        unsubscribe(db, user.workspace_id, "cy@example.com")
    world.due_now(campaign_id)
    dispatcher.run_until_idle()
    deliverer(world).deliver_due()

    events = delivered(receiver, "")
    recipients = {
        e["data"]["recipient"]["email"]: e["type"]
        for e in events
        if e["type"].startswith("recipient.")
    }
    assert recipients == {
        "ann@example.com": "recipient.replied",
        "bob@example.com": "recipient.bounced",
        "cy@example.com": "recipient.unsubscribed",
    }
    types = [e["type"] for e in events]
    assert types[0] == "campaign.started"
    assert types[-1] == "campaign.completed"
    assert types.count("campaign.completed") == 1
    replied = next(e for e in events if e["type"] == "recipient.replied")
    assert replied["data"]["campaign"]["id"] == campaign_id
    assert replied["data"]["recipient"]["reason"].startswith("Replied on ")


def test_nothing_is_queued_without_a_subscribed_endpoint(world: World, receiver: Receiver) -> None:
    register(world, f"{receiver.url}/in", ["recipient.replied"])
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"], start_delay_minutes=60)
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).one()
        campaigns.pause(db, user, campaign_id)

    assert deliverer(world).deliver_due() == 0
    assert receiver.received == []
