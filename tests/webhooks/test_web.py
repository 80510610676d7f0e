"""The Webhooks tab and API: admins register and remove endpoints; members cannot."""

from __future__ import annotations

import html

from sendwell.accounts import service as accounts
from sendwell.db import session_scope
from sendwell.webhooks.service import EVENT_TYPES
from tests.conftest import STRONG_PASSWORD, post_form
from tests.dispatch.conftest import World
from tests.webhooks.conftest import Receiver, admin_token

TAB = "/messaging/webhooks"


def test_an_admin_adds_an_endpoint_and_sees_its_secret(world: World, receiver: Receiver) -> None:
    assert 'href="/messaging/webhooks"' in world.client.get("/messaging/campaigns").text
    response = post_form(
        world.client,
        TAB,
        TAB,
        {"url": f"{receiver.url}/in", "description": "CRM", "events": "recipient.replied"},
    )
    page = html.unescape(response.text)
    assert "Endpoint added." in page
    assert f"{receiver.url}/in" in page
    assert "whsec_" in page
    assert "<code>recipient.replied</code>" in page
    listing = html.unescape(world.client.get(TAB).text)
    assert "CRM" in listing
    assert f"1 of {len(EVENT_TYPES)}" in listing


def test_a_bad_endpoint_is_refused_with_the_reason(world: World) -> None:
    response = post_form(
        world.client, TAB, TAB, {"url": "ftp://example.com/in", "events": "campaign.started"}
    )
    assert response.status_code == 422
    assert "Webhook URLs must start with https:// or http://." in html.unescape(response.text)
    no_events = post_form(world.client, TAB, TAB, {"url": "https://93.184.215.14/in"})
    assert "Choose at least one event to send." in html.unescape(no_events.text)


def test_disable_enable_and_delete_from_the_page(world: World, receiver: Receiver) -> None:
    added = post_form(
        world.client, TAB, TAB, {"url": f"{receiver.url}/in", "events": "campaign.started"}
    )
    page = str(added.url.path)
    disabled = post_form(world.client, page, f"{page}/disable", {})
    assert "Disabled by Ada Lovelace." in html.unescape(disabled.text)
    enabled = post_form(world.client, page, f"{page}/enable", {})
    assert "Endpoint enabled" in enabled.text
    deleted = post_form(world.client, page, f"{page}/delete", {})
    assert "Endpoint removed." in deleted.text
    assert world.client.get(page).status_code == 404


def test_members_cannot_see_or_manage_webhooks(world: World) -> None:
    with session_scope(world.factory) as db:
        member = accounts.create_user(db, email="bob@example.com", password=STRONG_PASSWORD)
        _token, plaintext = accounts.create_api_token(db, member, "bob")
    response = world.client.get(
        "/api/v1/webhooks", headers={"Authorization": f"Bearer {plaintext}"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_only"

    world.client.cookies.clear()
    post_form(
        world.client,
        "/sign-in",
        "/sign-in",
        {"email": "bob@example.com", "password": STRONG_PASSWORD},
    )
    assert 'href="/messaging/webhooks"' not in world.client.get("/messaging/campaigns").text
    refused = world.client.get(TAB)
    assert refused.status_code == 403
    assert "Only a workspace admin can manage webhooks." in refused.text


def test_the_api_lists_changes_and_deletes(world: World, receiver: Receiver) -> None:
    headers = {"Authorization": f"Bearer {admin_token(world)}"}
    created = world.client.post(
        "/api/v1/webhooks",
        json={"url": f"{receiver.url}/in", "events": ["campaign.paused", "campaign.started"]},
        headers=headers,
    ).json()
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["campaign.started", "campaign.paused"]
    changed = world.client.patch(
        f"/api/v1/webhooks/{created['id']}", json={"events": ["mailbox.connected"]}, headers=headers
    )
    assert changed.json()["events"] == ["mailbox.connected"]
    assert "secret" not in world.client.get("/api/v1/webhooks", headers=headers).json()[0]
    unknown = world.client.patch(
        f"/api/v1/webhooks/{created['id']}", json={"events": ["mailbox.exploded"]}, headers=headers
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_event_type"
    assert (
        world.client.delete(f"/api/v1/webhooks/{created['id']}", headers=headers).status_code == 204
    )
    assert world.client.get("/api/v1/webhooks", headers=headers).json() == []
