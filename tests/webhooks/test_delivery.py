"""Delivery from the outbox: signed, retried until it succeeds, in order, disabled after a day."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select

from sendwell.campaigns import service as campaigns
from sendwell.db import make_session_factory, session_scope
from sendwell.dispatch import resuming
from sendwell.kit.notices import outgoing_mail
from sendwell.kit.tokenbox import TokenBox
from sendwell.models import User
from sendwell.webhooks.delivery import DeliveryPolicy, WebhookDeliverer
from sendwell.webhooks.signing import SIGNATURE_HEADER, verify_signature
from tests.conftest import LOOPBACK
from tests.dispatch.conftest import World
from tests.sandbox_support import free_port
from tests.webhooks.conftest import Receiver, admin_token, deliverer, register
from tests.webhooks.test_guard import deliveries

ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}.", 0)]
SECRET = "whsec_receiver_secret_0123456789"


def test_a_delivery_is_signed_and_verifies_with_the_secret(
    world: World, receiver: Receiver
) -> None:
    register(world, f"{receiver.url}/in", ["campaign.started"], secret=SECRET)
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"])
    deliverer(world).deliver_due()

    (request,) = receiver.received
    verify_signature(SECRET, request.body, request.headers[SIGNATURE_HEADER.lower()])
    assert request.headers["content-type"] == "application/json"
    assert request.headers["sendwell-event"] == "campaign.started"
    event = request.event
    assert event["type"] == "campaign.started"
    assert event["id"] == request.headers["sendwell-event-id"]
    assert event["data"]["campaign"] == {
        "id": campaign_id,
        "name": "Outreach",
        "status": "active",
        "mailbox_id": world.mailbox_id(),
    }


def test_failures_are_retried_with_every_attempt_logged_until_one_succeeds(
    world: World, receiver: Receiver
) -> None:
    endpoint = register(world, f"{receiver.url}/in", ["campaign.started"])
    receiver.fail_next(2, status=503)
    world.campaign(ONE_STEP, ["ann@example.com"])

    assert deliverer(world).deliver_due() == 3

    assert [r.headers["x-answered"] for r in receiver.received] == ["503", "503", "2xx"]
    assert len({r.headers["sendwell-delivery"] for r in receiver.received}) == 1
    (delivery,) = deliveries(world, endpoint["id"])
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    log = delivery["attempt_log"]
    assert [a["status_code"] for a in log] == [503, 503, 200]
    assert [a["error"] for a in log] == ["Answered HTTP 503.", "Answered HTTP 503.", ""]
    page = world.client.get(f"/messaging/webhooks/{endpoint['id']}").text
    assert "Answered HTTP 503." in page
    assert "Delivered" in page


def test_the_next_retry_waits_for_the_backoff(world: World, receiver: Receiver) -> None:
    endpoint = register(world, f"{receiver.url}/in", ["campaign.started"])
    receiver.fail_next(1)
    world.campaign(ONE_STEP, ["ann@example.com"])
    slow = DeliveryPolicy(outbound=LOOPBACK, first_retry=timedelta(minutes=10))

    assert deliverer(world, slow).deliver_due() == 1
    assert deliverer(world, slow).deliver_due() == 0

    (delivery,) = deliveries(world, endpoint["id"])
    assert delivery["status"] == "pending"
    assert delivery["next_attempt_at"] > delivery["attempt_log"][0]["at"]


def test_one_campaigns_events_arrive_in_order_even_when_the_first_is_retried(
    world: World, receiver: Receiver
) -> None:
    register(
        world, f"{receiver.url}/in", ["campaign.started", "campaign.paused", "campaign.resumed"]
    )
    receiver.fail_next(3)
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"], start_delay_minutes=60)
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).one()
        campaigns.pause(db, user, campaign_id)
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).one()
        resuming.resume(db, user, campaign_id)

    deliverer(world).deliver_due()

    attempts = [r.event["type"] for r in receiver.received]
    assert attempts == [
        "campaign.started",
        "campaign.started",
        "campaign.started",
        "campaign.started",
        "campaign.paused",
        "campaign.resumed",
    ]
    assert [r.event["type"] for r in receiver.accepted()] == [
        "campaign.started",
        "campaign.paused",
        "campaign.resumed",
    ]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(BytesParser().parsebytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()
    asyncio.set_event_loop(None)


def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_the_admin_told(
    world: World, engine: Engine, receiver: Receiver, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    endpoint = register(world, f"{receiver.url}/in", ["campaign.started", "campaign.paused"])
    receiver.fail_next(1000)
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com"], start_delay_minutes=60)
    # A window of a fraction of a second stands in for the day.
    short = DeliveryPolicy(
        outbound=LOOPBACK,
        retry_for=timedelta(milliseconds=200),
        first_retry=timedelta(milliseconds=20),
        longest_retry=timedelta(milliseconds=20),
    )
    # The deliverer of a server with outgoing mail.
    mailing = make_session_factory(
        engine,
        outgoing_mail(f"smtp://127.0.0.1:{port}?from=sendwell@example.com", "http://testserver"),
    )
    worker = WebhookDeliverer(mailing, TokenBox(world.settings.token_key_list), short)
    for _ in range(500):
        worker.deliver_due()
        if not endpoint_state(world, endpoint["id"])["enabled"]:
            break
        time.sleep(0.02)

    state = endpoint_state(world, endpoint["id"])
    assert state["enabled"] is False
    assert state["disabled_reason"].startswith("Disabled automatically: every delivery has failed")
    assert "Answered HTTP 500." in state["disabled_reason"]
    (delivery,) = deliveries(world, endpoint["id"])
    assert delivery["status"] == "failed"
    assert {r.event["type"] for r in receiver.received} == {"campaign.started"}

    (mail,) = inbox.messages
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "Sendwell disabled a webhook endpoint"
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert f"{receiver.url}/in" in body
    assert "/messaging/webhooks" in body
    page = html.unescape(world.client.get("/messaging/webhooks").text)
    assert f"Webhooks to {receiver.url}/in are switched off." in page

    # Enabled again, it hears about what happens next.
    receiver.script.clear()
    response = world.client.patch(
        f"/api/v1/webhooks/{endpoint['id']}",
        json={"enabled": True},
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    )
    assert response.json()["enabled"] is True
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).one()
        campaigns.pause(db, user, campaign_id)
    deliverer(world).deliver_due()
    assert receiver.accepted()[-1].event["type"] == "campaign.paused"


def endpoint_state(world: World, endpoint_id: int) -> dict[str, Any]:
    response = world.client.get(
        f"/api/v1/webhooks/{endpoint_id}",
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    )
    found: dict[str, Any] = response.json()
    return found


def test_a_resume_carries_its_catch_up_choice_and_effect(world: World, receiver: Receiver) -> None:
    register(world, f"{receiver.url}/in", ["campaign.resumed"])
    campaign_id = world.campaign(ONE_STEP, ["ann@example.com", "bob@example.com"])
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).one()
        campaigns.pause(db, user, campaign_id)
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).one()
        resuming.resume(db, user, campaign_id, catch_up="shift")
    deliverer(world).deliver_due()

    (request,) = receiver.accepted()
    data = request.event["data"]
    assert data["reason"].startswith("Resumed. Shift every pending step later")
    assert data["catch_up"]["mode"] == "shift"
    assert data["catch_up"]["shifted"] == 2
    assert data["catch_up"]["due_now"] == 2  # they were due before the pause, and still are
