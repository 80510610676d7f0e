"""Only http(s) to public addresses: refused at registration, at delivery, and on redirect."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from sendwell.app import create_app
from sendwell.webhooks import service as webhook_service
from sendwell.webhooks.delivery import DeliveryPolicy
from sendwell.webhooks.guard import UnsafeDestination, resolve_destination
from tests.conftest import LOOPBACK, PUBLIC_ONLY
from tests.dispatch.conftest import World
from tests.webhooks.conftest import FAST, Receiver, admin_token, deliverer, register

REFUSED = [
    ("http://127.0.0.1/hook", "loopback, private or reserved"),
    ("http://localhost:8080/hook", "loopback, private or reserved"),
    ("http://10.1.2.3/hook", "loopback, private or reserved"),
    ("http://192.168.0.10/hook", "loopback, private or reserved"),
    ("http://172.16.5.4/hook", "loopback, private or reserved"),
    ("http://169.254.169.254/latest/meta-data", "loopback, private or reserved"),
    ("http://100.64.0.1/hook", "loopback, private or reserved"),
    ("http://0.0.0.0/hook", "loopback, private or reserved"),
    ("http://[::1]/hook", "loopback, private or reserved"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback, private or reserved"),
    ("http://[fd00::1]/hook", "loopback, private or reserved"),
    ("http://[::127.0.0.1]/hook", "loopback, private or reserved"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "loopback, private or reserved"),
    ("http://[2002:7f00:1::]/hook", "loopback, private or reserved"),
    ("ftp://example.com/hook", "must start with https:// or http://"),
    ("file:///etc/passwd", "must start with https:// or http://"),
    ("gopher://example.com/", "must start with https:// or http://"),
    ("https:///no-host", "has no host name"),
    ("https://user:password@example.com/hook", "no user name or password"),
    ("https://example.com:99999/hook", "port is not a number"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_unsafe_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeDestination, match=why):
        resolve_destination(url, PUBLIC_ONLY)


def test_a_public_address_is_pinned_and_keeps_its_host_header() -> None:
    destination = resolve_destination("https://93.184.215.14:8443/in?x=1", PUBLIC_ONLY)
    assert destination.pinned_url() == "https://93.184.215.14:8443/in?x=1"
    assert destination.host_header() == "93.184.215.14:8443"


def test_private_addresses_are_allowed_only_when_the_setting_says_so() -> None:
    destination = resolve_destination("http://localhost:9/hook", LOOPBACK)
    assert destination.address.is_loopback


def test_the_api_refuses_a_private_endpoint_without_the_setting(
    world: World, engine: Engine
) -> None:
    strict = world.settings.model_copy(update={"outbound_allow": ""})
    with TestClient(create_app(strict, engine=engine)) as client:
        response = client.post(
            "/api/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["campaign.started"]},
            headers={"Authorization": f"Bearer {admin_token(world)}"},
        )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unsafe_webhook_url"
    assert "127.0.0.1" in error["message"]


def test_a_delivery_to_a_private_address_is_refused_and_logged(
    world: World, receiver: Receiver
) -> None:
    endpoint = register(world, f"{receiver.url}/hook", ["campaign.started"])
    world.campaign([("Hi", "Hello", 0)], ["ann@example.com"])
    strict = DeliveryPolicy(outbound=PUBLIC_ONLY, retry_for=FAST.retry_for)
    assert deliverer(world, strict).deliver_due() == 1

    assert receiver.received == []
    (delivery,) = deliveries(world, endpoint["id"])
    assert delivery["status"] == "pending"
    (attempt,) = delivery["attempt_log"]
    assert not attempt["succeeded"]
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("Refused: 127.0.0.1 resolves to 127.0.0.1")


def test_redirects_are_not_followed(world: World, receiver: Receiver) -> None:
    endpoint = register(world, f"{receiver.url}/hook", ["campaign.started"])
    receiver.redirect_next(f"{receiver.url}/elsewhere")
    world.campaign([("Hi", "Hello", 0)], ["ann@example.com"])
    deliverer(world, FAST).deliver_due()

    assert [r.path for r in receiver.received] == ["/hook", "/hook"]
    (delivery,) = deliveries(world, endpoint["id"])
    assert delivery["status"] == "delivered"
    first, second = delivery["attempt_log"]
    assert first["status_code"] == 302
    assert not first["succeeded"]
    assert "redirects are not followed" in first["error"]
    assert second["succeeded"]


def deliveries(world: World, endpoint_id: int) -> list[dict[str, Any]]:
    response = world.client.get(
        f"/api/v1/webhooks/{endpoint_id}/deliveries",
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def test_a_workspace_has_at_most_its_endpoint_limit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_service, "MAX_ENDPOINTS", 2)
    for n in range(2):
        register(world, f"http://127.0.0.1:9/hook-{n}", ["campaign.started"])
    refused = world.client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/third", "events": ["campaign.started"]},
        headers={"Authorization": f"Bearer {admin_token(world)}"},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "too_many_endpoints"
