"""The recipients of a campaign in the API and on the campaign page: search, filters, sort, and
actions on one or many."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.campaigns import service
from sendwell.campaigns.recipients import RecipientIn, add_recipients
from sendwell.kit.clock import utcnow
from sendwell.models import (
    Campaign,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    Role,
    SendLedger,
    User,
)
from tests.campaigns.test_api import Caller, caller, campaign_body
from tests.campaigns.test_web import connected_mailbox, editor_post
from tests.conftest import create_first_account, csrf_from

PEOPLE = [
    RecipientIn("grace@navy.example.com", first_name="Grace", last_name="Hopper"),
    RecipientIn("alan@example.org", first_name="Alan", last_name="Turing"),
    RecipientIn("ada@example.org", first_name="Ada", last_name="Lovelace"),
]


@pytest.fixture
def ada(db: Session) -> Caller:
    return caller(db, "ada@example.com", Role.ADMIN, "ada@gmail.test")


@pytest.fixture
def bob(db: Session, ada: Caller) -> Caller:
    return caller(db, "bob@example.com", Role.MEMBER, "bob@gmail.test")


def _campaign(client: TestClient, ada: Caller, name: str = "Backend") -> int:
    created = client.post(
        "/api/v1/campaigns", json=campaign_body(ada.mailbox.id, name=name), headers=ada.headers
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def test_list_filter_sort_and_act_through_the_api(
    client: TestClient, db: Session, ada: Caller, bob: Caller
) -> None:
    campaign_id = _campaign(client, ada)
    other_id = _campaign(client, ada, name="Frontend")
    add_recipients(db, ada.user, campaign_id, PEOPLE)
    db.commit()
    url = f"/api/v1/campaigns/{campaign_id}/recipients"

    def emails(**params: str) -> list[str]:
        answer = client.get(url, params=params, headers=ada.headers)
        assert answer.status_code == 200, answer.text
        return [r["email"] for r in answer.json()]

    assert emails(q="hopper") == ["grace@navy.example.com"]
    assert emails(domain="example.org", sort="-email") == ["alan@example.org", "ada@example.org"]
    assert emails(step="0", sort="email")[0] == "ada@example.org"
    bad = client.get(url, params={"sort": "age"}, headers=ada.headers)
    assert bad.status_code == 422
    assert "Unknown sort “age”" in bad.json()["error"]["message"]
    bad = client.get(url, params={"status": "sleeping"}, headers=ada.headers)
    assert bad.status_code == 422

    ids = {r["email"]: r["id"] for r in client.get(url, headers=ada.headers).json()}
    actions = f"{url}/actions"
    paused = client.post(
        actions,
        json={"action": "pause", "ids": [ids["alan@example.org"], ids["ada@example.org"]]},
        headers=ada.headers,
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["message"] == "Paused 2 recipients."
    assert {r["status"] for r in paused.json()["changed"]} == {"paused"}
    assert emails(status="paused", sort="email") == ["ada@example.org", "alan@example.org"]

    # Again: nobody can be paused twice, so the whole request is refused with the reason.
    again = client.post(
        actions, json={"action": "pause", "ids": [ids["ada@example.org"]]}, headers=ada.headers
    )
    assert again.status_code == 409
    assert "ada@example.org is paused" in again.json()["error"]["message"]

    moved = client.post(
        actions,
        json={"action": "move", "ids": [ids["ada@example.org"]], "to_campaign_id": other_id},
        headers=ada.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["message"] == "Moved 1 recipient to “Frontend”."
    there = client.get(f"/api/v1/campaigns/{other_id}/recipients", headers=ada.headers).json()
    assert [(r["email"], r["status"]) for r in there] == [("ada@example.org", "not_started")]

    # Unknown action, someone else's campaign, a recipient of another campaign.
    unknown = client.post(actions, json={"action": "snooze", "ids": [1]}, headers=ada.headers)
    assert unknown.status_code == 422
    theirs = client.post(
        actions, json={"action": "pause", "ids": [ids["alan@example.org"]]}, headers=bob.headers
    )
    assert theirs.status_code == 404
    elsewhere = client.post(
        f"/api/v1/campaigns/{other_id}/recipients/actions",
        json={"action": "pause", "ids": [ids["grace@navy.example.com"]]},
        headers=ada.headers,
    )
    assert elsewhere.status_code == 404
    assert service.get_campaign(db, ada.user, campaign_id).status.value == "draft"


def test_the_table_filters_and_pauses_in_bulk_and_the_recipient_page_shows_what_went(
    client: TestClient, db: Session
) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    editor_post(client, "/campaigns/new", mailbox.id)
    campaign = db.scalars(select(Campaign)).one()
    add_recipients(db, db.scalars(select(User)).one(), campaign.id, PEOPLE)
    # Grace had step 1 sent, with the subject as it went.
    grace = db.scalars(select(Enrollment).where(Enrollment.email.startswith("grace"))).one()
    grace.status, grace.steps_sent = EnrollmentStatus.IN_PROGRESS, 1
    grace.last_sent_at = utcnow() - timedelta(hours=1)
    db.add(
        SendLedger(
            enrollment_id=grace.id,
            campaign_id=campaign.id,
            mailbox_id=mailbox.id,
            step_position=1,
            status=LedgerStatus.SENT,
            tag="t-grace",
            subject="Hi Grace",
            message_id_header="<abc@mail.gmail.com>",
            sent_at=grace.last_sent_at,
        )
    )
    db.commit()

    page = f"/campaigns/{campaign.id}"
    found = html.unescape(client.get(page, params={"domain": "example.org", "sort": "-email"}).text)
    rows = re.findall(r'aria-label="Choose ([^"]+)"', found)
    assert rows == ["alan@example.org", "ada@example.org"]
    assert "2 recipients match" in found
    back = re.search(r'id="recipient-actions">.*?name="back" value="([^"]+)"', found, re.S)
    assert back is not None
    assert "domain=example.org" in back.group(1)
    assert "sort=-email" in back.group(1)

    ids = re.findall(r'name="ids" value="(\d+)"', found)
    done = client.post(
        f"{page}/recipients/actions",
        data={"csrftoken": csrf_from(found), "action": "pause", "ids": ids, "back": back.group(1)},
    )
    assert done.status_code == 200
    shown = html.unescape(done.text)
    assert "Paused 2 recipients." in shown
    assert re.findall(r'aria-label="Choose ([^"]+)"', shown) == rows, "the filters were kept"
    assert shown.count('badge badge-e-paused">Paused') == 2

    bad = html.unescape(client.get(page, params={"sort": "age"}).text)
    assert "Unknown sort “age”" in bad

    detail = html.unescape(client.get(f"{page}/recipients/{grace.id}").text)
    assert "What was sent" in detail
    assert "Hi Grace" in detail
    assert "Hello from Ada" in detail  # the body rendered for her
    assert "{{" not in detail.split("What was sent")[1]
    assert ">Message-ID<" not in detail
    assert 'value="pause"' in detail
    assert 'value="resume"' not in detail
    paused = client.post(
        f"{page}/recipients/actions",
        data={
            "csrftoken": csrf_from(detail),
            "action": "pause",
            "ids": str(grace.id),
            "back": f"{page}/recipients/{grace.id}",
        },
    )
    after = html.unescape(paused.text)
    assert "Paused 1 recipient." in after
    assert 'value="resume"' in after
    # A return address outside the campaign is not followed.
    elsewhere = client.post(
        f"{page}/recipients/actions",
        data={
            "csrftoken": csrf_from(after),
            "action": "resume",
            "ids": str(grace.id),
            "back": "https://evil.example.com/",
        },
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == f"{page}#recipients"
