"""/api/v1/snippets and /api/v1/campaigns/{id}/start-preview."""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from sendwell.campaigns.recipients import RecipientIn, add_recipients
from tests.campaigns.test_api import Caller, ada, bob  # noqa: F401 - fixtures
from tests.campaigns.test_service import make_campaign


def test_snippets_crud_over_the_api(client: TestClient, ada: Caller, bob: Caller) -> None:  # noqa: F811
    made = client.post(
        "/api/v1/snippets",
        json={"name": "Sign-off", "body": "Best,\n{{ sender_name }}"},
        headers=bob.headers,
    )
    assert made.status_code == 201, made.text
    snippet = made.json()
    assert (snippet["name"], snippet["body"]) == ("Sign-off", "Best,\n{{ sender_name }}")
    # The workspace shares it; only its author (or an admin) changes it.
    listed = client.get("/api/v1/snippets", headers=ada.headers).json()
    assert [s["name"] for s in listed] == ["Sign-off"]
    url = f"/api/v1/snippets/{snippet['id']}"
    patched = client.patch(url, json={"body": "Cheers"}, headers=bob.headers)
    assert patched.json()["body"] == "Cheers"
    broken = client.patch(url, json={"body": "{{ oops "}, headers=bob.headers)
    assert broken.status_code == 422
    assert "The snippet “Sign-off”" in broken.json()["error"]["message"]
    taken = client.post(
        "/api/v1/snippets", json={"name": "sign-off", "body": "x"}, headers=ada.headers
    )
    assert taken.status_code == 409
    assert client.delete(url, headers=ada.headers).status_code == 204
    assert client.get("/api/v1/snippets", headers=bob.headers).json() == []
    assert client.delete(url, headers=ada.headers).status_code == 404


def test_start_preview_over_the_api(client: TestClient, db: Session, ada: Caller) -> None:  # noqa: F811
    campaign = make_campaign(db, ada.user, ada.mailbox, start_delay_minutes=20)
    add_recipients(
        db,
        ada.user,
        campaign.id,
        [RecipientIn("grace@example.com"), RecipientIn("alan@example.com")],
    )
    db.commit()
    shown = client.get(f"/api/v1/campaigns/{campaign.id}/start-preview", headers=ada.headers)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["recipients"], body["mailbox"], body["start_delay_minutes"]) == (
        2,
        "ada@gmail.test",
        20,
    )
    assert datetime.fromisoformat(body["first_send_at"]) > datetime.fromisoformat(
        client.get(f"/api/v1/campaigns/{campaign.id}", headers=ada.headers).json()["created_at"]
    )
    # Nothing started: the preview changes nothing.
    assert (
        client.get(f"/api/v1/campaigns/{campaign.id}", headers=ada.headers).json()["status"]
        == "draft"
    )
