"""Send a test to me: through the campaign's account on every kind of host, never a send."""

from __future__ import annotations

import html

from sqlalchemy import func, select

from sendwell.accounts import service as accounts
from sendwell.db import session_scope
from sendwell.models import Enrollment, EnrollmentStatus, SendLedger, TestSend, User
from tests.conftest import post_form
from tests.dispatch.conftest import World
from tests.dispatch.hosts import Host

STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}, a role at {{ company | default('us') }}.", 0),
    ("", "Following up, {{ first_name }}.", 60),
]


def ledger_rows(world: World) -> int:
    with session_scope(world.factory) as db:
        return int(db.scalar(select(func.count()).select_from(SendLedger)) or 0)


def recipient_id(world: World, campaign_id: int, email: str) -> int:
    return world.enrollment(campaign_id, email).id


def test_a_test_goes_through_the_account_and_is_never_a_send(
    host_world: tuple[World, Host],
) -> None:
    world, host = host_world
    campaign_id = world.campaign(STEPS, ["ann@example.com"], start=False, sender=host.address)
    ann = recipient_id(world, campaign_id, "ann@example.com")
    page = f"/campaigns/{campaign_id}/message?step=2&recipient={ann}"
    shown = html.unescape(world.client.get(page).text)
    # The preview is the message the send builds: reply subject, unsubscribe header and footer.
    assert "Re: Hello ann" in shown
    assert "List-Unsubscribe" in shown
    sent = post_form(
        world.client,
        page,
        f"/campaigns/{campaign_id}/test-send",
        {"step": "2", "recipient": str(ann), "to": host.address},
    )
    assert sent.status_code == 200
    assert f"was sent to {host.address}" in html.unescape(sent.text)
    received = host.received(host.address)
    assert [m.subject for m in received] == ["[Test] Re: Hello ann"]
    assert host.received("ann@example.com") == []
    # Nothing in the ledger, nothing counted against Ann, the campaign still a draft.
    assert ledger_rows(world) == 0
    enrollment = world.enrollment(campaign_id, "ann@example.com")
    assert (enrollment.status, enrollment.steps_sent) == (EnrollmentStatus.NOT_STARTED, 0)


def test_the_api_sends_to_the_user_and_refuses_others(world: World) -> None:
    campaign_id = world.campaign(STEPS, ["ann@example.com"], start=False)
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).one()
        _token, plaintext = accounts.create_api_token(db, user, "tests")
    headers = {"Authorization": f"Bearer {plaintext}"}
    url = f"/api/v1/campaigns/{campaign_id}/test-send"
    answer = world.client.post(url, json={"step": 1}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "to": "ada@example.com",
        "subject": "[Test] Hello Ada",
        "step": 1,
        "recipient": "ada@example.com",
        "mailbox": "ada@gmail.test",
    }
    (message,) = [m for m in world.sent() if "ada@example.com" in m["to"]]
    assert message["headers"]["Subject"] == "[Test] Hello Ada"
    stranger = world.client.post(
        url, json={"step": 1, "to": "someone@elsewhere.example"}, headers=headers
    )
    assert stranger.status_code == 422
    assert stranger.json()["error"]["code"] == "test_address_not_allowed"
    missing = world.client.post(url, json={"step": 7}, headers=headers)
    assert missing.status_code == 404
    assert ledger_rows(world) == 0


def test_tests_are_limited_to_ten_a_minute(world: World) -> None:
    campaign_id = world.campaign(STEPS, ["ann@example.com"], start=False)
    with session_scope(world.factory) as db:
        user = db.scalars(select(User)).one()
        _token, plaintext = accounts.create_api_token(db, user, "tests")
    headers = {"Authorization": f"Bearer {plaintext}"}
    url = f"/api/v1/campaigns/{campaign_id}/test-send"
    for _ in range(10):
        assert world.client.post(url, json={}, headers=headers).status_code == 200
    refused = world.client.post(url, json={}, headers=headers)
    assert refused.status_code == 429
    assert "10 test emails in the last minute" in refused.json()["error"]["message"]
    with session_scope(world.factory) as db:
        assert db.scalar(select(func.count()).select_from(TestSend)) == 10
    assert len([m for m in world.sent() if "ada@example.com" in m["to"]]) == 10


def test_a_broken_account_refuses_the_test_clearly(world: World) -> None:
    campaign_id = world.campaign(STEPS, ["ann@example.com"], start=False)
    world.sandbox.admin("revoke", {"mailbox": "ada@gmail.test"})
    page = f"/campaigns/{campaign_id}/message"
    sent = post_form(world.client, page, f"/campaigns/{campaign_id}/test-send", {"step": "1"})
    text = html.unescape(sent.text)
    assert "The test was not sent: ada@gmail.test needs reauthentication." in text
    again = post_form(world.client, page, f"/campaigns/{campaign_id}/test-send", {"step": "1"})
    assert "ada@gmail.test is not connected" in html.unescape(again.text)
    assert world.sent() == []
    with session_scope(world.factory) as db:
        assert db.scalar(select(func.count()).select_from(TestSend)) == 0
        assert db.scalar(select(func.count()).select_from(Enrollment)) == 1
