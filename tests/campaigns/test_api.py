"""/api/v1/campaigns through the real app with an API token: the whole contract."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.campaigns import service
from sendwell.models import (
    Campaign,
    CampaignEvent,
    Enrollment,
    Mailbox,
    MailboxStatus,
    PauseReason,
    Role,
    Suppression,
    SuppressionReason,
    User,
)
from tests.campaigns.test_service import make_mailbox, make_user
from tests.conftest import Database, make_settings


@dataclass
class Caller:
    user: User
    mailbox: Mailbox
    headers: dict[str, str]


def caller(db: Session, email: str, role: Role, mailbox_email: str) -> Caller:
    user = make_user(db, email, role)
    mailbox = make_mailbox(db, user, mailbox_email)
    _token, plaintext = accounts.create_api_token(db, user, "tests")
    db.commit()
    return Caller(user, mailbox, {"Authorization": f"Bearer {plaintext}"})


@pytest.fixture
def ada(db: Session) -> Caller:
    """The workspace admin, with a connected mailbox and a token."""
    return caller(db, "ada@example.com", Role.ADMIN, "ada@gmail.test")


@pytest.fixture
def bob(db: Session, ada: Caller) -> Caller:
    """A member of Ada's workspace, with his own mailbox and token."""
    return caller(db, "bob@example.com", Role.MEMBER, "bob@gmail.test")


def campaign_body(mailbox_id: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Backend engineers",
        "mailbox_id": mailbox_id,
        "steps": [
            {"subject": "Hi {{ first_name }}", "body": "Hello from {{ sender_name }}"},
            {
                "subject": "Re: {{ company | default('hi') }}",
                "body": "Following up",
                "body_html": "<p>Following up, <b>{{ first_name }}</b></p>",
                "delay_minutes": 4320,
                "new_thread": True,
            },
        ],
        "schedule": {
            "days": ["wed", "mon"],
            "start": "09:00",
            "end": "17:00",
            "timezone": "Europe/Paris",
        },
        "start_delay_minutes": 30,
    }
    body.update(changes)
    return body


def create(client: TestClient, who: Caller, **changes: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/campaigns", json=campaign_body(who.mailbox.id, **changes), headers=who.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def add_recipients(
    client: TestClient, who: Caller, campaign_id: int, *rows: dict[str, Any]
) -> dict[str, Any]:
    people = list(rows) or [{"email": "grace@example.com", "first_name": "Grace"}]
    response = client.post(
        f"/api/v1/campaigns/{campaign_id}/recipients",
        json={"recipients": people},
        headers=who.headers,
    )
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def act(client: TestClient, who: Caller, campaign_id: int, action: str) -> Any:
    return client.post(f"/api/v1/campaigns/{campaign_id}/{action}", headers=who.headers)


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


# Authentication ------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/v1/campaigns"),
    ("POST", "/api/v1/campaigns"),
    ("GET", "/api/v1/campaigns/1"),
    ("PUT", "/api/v1/campaigns/1"),
    ("POST", "/api/v1/campaigns/1/start"),
    ("POST", "/api/v1/campaigns/1/pause"),
    ("POST", "/api/v1/campaigns/1/resume"),
    ("POST", "/api/v1/campaigns/1/archive"),
    ("POST", "/api/v1/campaigns/1/duplicate"),
    ("POST", "/api/v1/campaigns/1/recipients"),
    ("GET", "/api/v1/campaigns/1/recipients"),
    ("GET", "/api/v1/campaigns/1/preview"),
    ("GET", "/api/v1/campaigns/1/events"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_token(client: TestClient, ada: Caller, method: str, path: str) -> None:
    response = client.request(method, path, json={})
    error = error_of(response, 401, "missing_token")
    assert "Authorization" in error["message"]
    wrong = client.request(method, path, json={}, headers={"Authorization": "Bearer sw_nope"})
    error_of(wrong, 401, "invalid_token")


def test_the_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {
        "/campaigns",
        "/campaigns/{campaign_id}",
        "/campaigns/{campaign_id}/start",
        "/campaigns/{campaign_id}/recipients",
        "/campaigns/{campaign_id}/preview",
    } <= set(paths)


# Creating ------------------------------------------------------------------------------------


def test_create_a_draft(client: TestClient, db: Session, ada: Caller) -> None:
    created = create(client, ada)
    assert created["status"] == "draft"
    assert created["name"] == "Backend engineers"
    assert (created["pause_reason"], created["pause_reason_text"]) == (None, "")
    assert (created["mailbox_id"], created["owner_id"]) == (ada.mailbox.id, ada.user.id)
    assert created["steps"] == [
        {
            "position": 1,
            "subject": "Hi {{ first_name }}",
            "body": "Hello from {{ sender_name }}",
            "body_html": "",
            "delay_minutes": 0,
            "new_thread": False,
        },
        {
            "position": 2,
            "subject": "Re: {{ company | default('hi') }}",
            "body": "Following up",
            "body_html": "<p>Following up, <b>{{ first_name }}</b></p>",
            "delay_minutes": 4320,
            "new_thread": True,
        },
    ]
    assert created["schedule"] == {
        "days": ["mon", "wed"],
        "start": "09:00",
        "end": "17:00",
        "timezone": "Europe/Paris",
    }
    assert created["start_delay_minutes"] == 30
    assert created["created_at"]
    assert created["started_at"] is None
    assert created["counts"] == {
        "recipients": 0,
        "sent": 0,
        "replied": 0,
        "bounced": 0,
        "completed": 0,
        "unsubscribed": 0,
        "failed": 0,
        "interested": 0,
    }
    stored = db.get(Campaign, created["id"])
    assert stored is not None
    assert stored.owner_id == ada.user.id


def test_create_with_the_defaults(client: TestClient, ada: Caller) -> None:
    response = client.post(
        "/api/v1/campaigns",
        json={
            "name": "Minimal",
            "mailbox_id": ada.mailbox.id,
            "steps": [{"subject": "S", "body": "B", "delay_minutes": 0}],
        },
        headers=ada.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["schedule"] == {"days": [], "start": None, "end": None, "timezone": "UTC"}
    assert created["start_delay_minutes"] == 20


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        (
            {"schedule": {"days": ["mon"], "start": "9am", "end": "17:00"}},
            "invalid_schedule",
            "09:00",
        ),
        ({"schedule": {"timezone": "Mars/Olympus"}}, "invalid_schedule", "Mars/Olympus"),
        ({"name": "  "}, "invalid_name", "name"),
        ({"start_delay_minutes": 99_999_999}, "invalid_start_delay", "30 days"),
        ({"steps": [{"subject": "Hi {{ first_name", "body": "B"}]}, "template_error", "Step 1"),
        ({"steps": [{"subject": "S", "body": " "}]}, "invalid_step", "Step 1 needs a body"),
        ({"steps": [{"subject": "", "body": "B"}]}, "invalid_step", "Step 1 needs a subject"),
        (
            {
                "steps": [
                    {"subject": "Quick question", "body": "B"},
                    {"subject": "Following up", "body": "C", "delay_minutes": 60},
                ]
            },
            "reply_subject_mismatch",
            'its subject is step 1\'s: "Re: Quick question"',
        ),
    ],
)
def test_create_refuses_what_the_service_refuses(
    client: TestClient,
    db: Session,
    ada: Caller,
    changes: dict[str, Any],
    code: str,
    words: str,
) -> None:
    response = client.post(
        "/api/v1/campaigns", json=campaign_body(ada.mailbox.id, **changes), headers=ada.headers
    )
    assert words in error_of(response, 422, code)["message"]
    assert db.scalar(select(func.count()).select_from(Campaign)) == 0


def test_create_refuses_someone_elses_mailbox(
    client: TestClient, db: Session, ada: Caller, bob: Caller
) -> None:
    response = client.post(
        "/api/v1/campaigns", json=campaign_body(ada.mailbox.id), headers=bob.headers
    )
    error_of(response, 422, "unknown_mailbox")
    assert db.scalar(select(func.count()).select_from(Campaign)) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mailbox_id": 1, "steps": []}, "name"),
        ({"name": "x", "steps": []}, "mailbox_id"),
        ({"name": "x", "mailbox_id": "one", "steps": []}, "mailbox_id"),
        ({"name": "x", "mailbox_id": 1, "steps": [{"subject": 5, "body": "b"}]}, "steps.0.subject"),
        ({"name": "x", "mailbox_id": 1, "steps": [], "colour": "red"}, "colour"),
    ],
)
def test_a_malformed_body_is_a_422_naming_the_field(
    client: TestClient, db: Session, ada: Caller, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/campaigns", json=body, headers=ada.headers)
    error = error_of(response, 422, "invalid_request")
    assert error["message"].startswith(f"{field}:")
    assert db.scalar(select(func.count()).select_from(Campaign)) == 0


def test_malformed_json_is_a_422(client: TestClient, db: Session, ada: Caller) -> None:
    response = client.post(
        "/api/v1/campaigns",
        content=b'{"name": "half',
        headers={**ada.headers, "Content-Type": "application/json"},
    )
    error_of(response, 422, "malformed_json")
    assert db.scalar(select(func.count()).select_from(Campaign)) == 0


# Reading -------------------------------------------------------------------------------------


def test_list_and_get(client: TestClient, ada: Caller) -> None:
    first = create(client, ada, name="First")
    second = create(client, ada, name="Second")
    add_recipients(
        client, ada, second["id"], {"email": "a@example.com"}, {"email": "b@example.com"}
    )
    listed = client.get("/api/v1/campaigns", headers=ada.headers)
    assert listed.status_code == 200
    by_id = {item["id"]: item for item in listed.json()}
    assert [item["name"] for item in listed.json()] == ["Second", "First"]
    assert by_id[first["id"]]["counts"]["recipients"] == 0
    assert by_id[second["id"]]["counts"]["recipients"] == 2
    assert by_id[first["id"]]["steps"] == first["steps"]
    one = client.get(f"/api/v1/campaigns/{second['id']}", headers=ada.headers)
    assert one.status_code == 200
    assert one.json() == by_id[second["id"]]


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine runs while the test is listening."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_the_list_costs_the_same_queries_for_one_or_many(
    client: TestClient, ada: Caller, statements: list[str]
) -> None:
    created = create(client, ada, name="One")
    add_recipients(client, ada, created["id"])
    client.get("/api/v1/campaigns", headers=ada.headers)  # the token's first use is recorded
    statements.clear()
    client.get("/api/v1/campaigns", headers=ada.headers)
    with_one = len(statements)
    for name in ("Two", "Three", "Four"):
        add_recipients(client, ada, create(client, ada, name=name)["id"])
    statements.clear()
    listed = client.get("/api/v1/campaigns", headers=ada.headers).json()
    assert len(listed) == 4
    assert all(item["counts"]["recipients"] == 1 and len(item["steps"]) == 2 for item in listed)
    assert len(statements) == with_one


def test_an_unknown_campaign_is_a_404(client: TestClient, ada: Caller) -> None:
    error_of(client.get("/api/v1/campaigns/999", headers=ada.headers), 404, "unknown_campaign")
    error_of(client.get("/api/v1/campaigns/abc", headers=ada.headers), 422, "invalid_request")


# Access --------------------------------------------------------------------------------------

ACTIONS_ON_ONE = [
    ("GET", ""),
    ("PUT", ""),
    ("POST", "/start"),
    ("POST", "/pause"),
    ("POST", "/resume"),
    ("POST", "/archive"),
    ("POST", "/duplicate"),
    ("POST", "/recipients"),
    ("GET", "/recipients"),
    ("GET", "/preview"),
    ("GET", "/events"),
]


@pytest.mark.parametrize(("method", "suffix"), ACTIONS_ON_ONE)
def test_another_users_campaign_is_a_404(
    client: TestClient, db: Session, ada: Caller, bob: Caller, method: str, suffix: str
) -> None:
    adas = create(client, ada)
    add_recipients(client, ada, adas["id"])
    body: dict[str, Any] = {}
    if method == "PUT":
        body = campaign_body(bob.mailbox.id)
    elif suffix == "/recipients":
        body = {"recipients": [{"email": "x@example.com"}]}
    response = client.request(
        method, f"/api/v1/campaigns/{adas['id']}{suffix}", json=body, headers=bob.headers
    )
    error_of(response, 404, "unknown_campaign")
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Campaign)) == 1
    assert db.scalar(select(func.count()).select_from(Enrollment)) == 1
    assert db.get(Campaign, adas["id"]).status.value == "draft"  # type: ignore[union-attr]


def test_members_list_their_own_and_admins_all(
    client: TestClient, ada: Caller, bob: Caller
) -> None:
    adas = create(client, ada, name="Ada's")
    bobs = create(client, bob, name="Bob's")
    assert [c["id"] for c in client.get("/api/v1/campaigns", headers=bob.headers).json()] == [
        bobs["id"]
    ]
    everything = client.get("/api/v1/campaigns", headers=ada.headers).json()
    assert {c["id"] for c in everything} == {adas["id"], bobs["id"]}
    # The admin acts on the member's campaign too.
    add_recipients(client, ada, bobs["id"])
    assert act(client, ada, bobs["id"], "start").json()["status"] == "active"
    assert act(client, ada, bobs["id"], "pause").json()["status"] == "paused"


# The status machine --------------------------------------------------------------------------


def test_start_pause_resume_archive(client: TestClient, db: Session, ada: Caller) -> None:
    created = create(client, ada)
    cid = created["id"]
    add_recipients(client, ada, cid)
    error_of(act(client, ada, cid, "pause"), 409, "illegal_transition")
    error_of(act(client, ada, cid, "resume"), 409, "illegal_transition")

    started = act(client, ada, cid, "start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "active"
    assert started.json()["started_at"]
    assert started.json()["steps"] == created["steps"]
    again = error_of(act(client, ada, cid, "start"), 409, "illegal_transition")
    assert "Only a draft campaign can be started" in again["message"]
    archive = error_of(act(client, ada, cid, "archive"), 409, "illegal_transition")
    assert "pause it first" in archive["message"]

    paused = act(client, ada, cid, "pause").json()
    assert (paused["status"], paused["pause_reason"], paused["pause_reason_text"]) == (
        "paused",
        "user",
        "Paused by you.",
    )
    resumed = act(client, ada, cid, "resume").json()
    assert (resumed["status"], resumed["pause_reason"]) == ("active", None)
    act(client, ada, cid, "pause")
    archived = act(client, ada, cid, "archive")
    assert archived.status_code == 200
    assert archived.json()["status"] == "archived"
    error_of(act(client, ada, cid, "resume"), 409, "illegal_transition")

    kinds = [
        e["kind"] for e in client.get(f"/api/v1/campaigns/{cid}/events", headers=ada.headers).json()
    ]
    assert kinds == [
        "archived",
        "paused",
        "resumed",
        "paused",
        "started",
        "recipients_added",
        "created",
    ]
    actors = {e.actor_id for e in db.scalars(select(CampaignEvent))}
    assert actors == {ada.user.id}


def test_start_with_problems_is_a_422_listing_them(
    client: TestClient, db: Session, ada: Caller
) -> None:
    cid = create(client, ada)["id"]
    add_recipients(
        client,
        ada,
        cid,
        {"email": "grace@example.com", "first_name": "Grace"},
        {"email": "anon@example.com"},
    )
    response = act(client, ada, cid, "start")
    error = error_of(response, 422, "campaign_not_ready")
    # Step 1's subject and step 2's HTML body both need a first name: one problem, one line.
    assert error["message"] == "The campaign cannot start yet: 1 problem to fix."
    assert error["total"] == 1
    assert error["problems"] == [
        {
            "message": "{{ first_name }} is empty for 1 of 2 recipients (step 1 subject, "
            'step 2 HTML body). Give them a value, or a default: {{ first_name | default("…") }}.',
            "step": 1,
            "recipient": "anon@example.com",
            "recipients": 1,
        }
    ]
    assert client.get(f"/api/v1/campaigns/{cid}", headers=ada.headers).json()["status"] == "draft"

    empty = create(client, ada, name="Empty", steps=[])
    error = error_of(act(client, ada, empty["id"], "start"), 422, "campaign_not_ready")
    assert error["problems"] == [
        {"message": "Add at least one step.", "step": None, "recipient": None, "recipients": 0},
        {
            "message": "Add at least one recipient.",
            "step": None,
            "recipient": None,
            "recipients": 0,
        },
    ]


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (MailboxStatus.REAUTH_REQUIRED, "ada@gmail.test needs reauthentication."),
        (MailboxStatus.DISCONNECTED, "ada@gmail.test is disconnected."),
    ],
)
def test_resume_while_the_mailbox_cannot_send_is_a_409(
    client: TestClient, db: Session, ada: Caller, status: MailboxStatus, words: str
) -> None:
    cid = create(client, ada)["id"]
    add_recipients(client, ada, cid)
    act(client, ada, cid, "start")
    mailbox = db.get(Mailbox, ada.mailbox.id)
    assert mailbox is not None
    mailbox.status = status
    service.pause_campaigns_for_mailbox(db, mailbox.id, PauseReason.MAILBOX_REAUTH_REQUIRED)
    db.commit()
    shown = client.get(f"/api/v1/campaigns/{cid}", headers=ada.headers).json()
    assert (shown["status"], shown["pause_reason"]) == ("paused", "mailbox_reauth_required")
    assert shown["pause_reason_text"] == (
        "Paused because the sending account needs reauthentication."
    )
    error = error_of(act(client, ada, cid, "resume"), 409, "mailbox_not_connected")
    assert error["message"].startswith(words)
    assert client.get(f"/api/v1/campaigns/{cid}", headers=ada.headers).json()["status"] == (
        "paused"
    )


def test_edit_a_draft_but_not_an_active_campaign(client: TestClient, ada: Caller) -> None:
    cid = create(client, ada)["id"]
    body = campaign_body(ada.mailbox.id, name="Renamed", steps=[{"subject": "S", "body": "B"}])
    edited = client.put(f"/api/v1/campaigns/{cid}", json=body, headers=ada.headers)
    assert edited.status_code == 200, edited.text
    assert edited.json()["name"] == "Renamed"
    assert [s["subject"] for s in edited.json()["steps"]] == ["S"]
    add_recipients(client, ada, cid)
    act(client, ada, cid, "start")
    refused = client.put(f"/api/v1/campaigns/{cid}", json=body, headers=ada.headers)
    assert "pause it first" in error_of(refused, 409, "not_editable")["message"]


def test_duplicate_is_a_new_draft_without_recipients(client: TestClient, ada: Caller) -> None:
    source = create(client, ada)
    add_recipients(client, ada, source["id"])
    act(client, ada, source["id"], "start")
    response = act(client, ada, source["id"], "duplicate")
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["id"] != source["id"]
    assert (copy["name"], copy["status"]) == ("Backend engineers (copy)", "draft")
    assert copy["steps"] == source["steps"]
    assert copy["schedule"] == source["schedule"]
    assert copy["start_delay_minutes"] == source["start_delay_minutes"]
    assert copy["counts"]["recipients"] == 0
    listed = client.get(f"/api/v1/campaigns/{copy['id']}/recipients", headers=ada.headers)
    assert listed.json() == []


# Recipients ----------------------------------------------------------------------------------


def test_recipients_added_and_skipped_with_reasons(
    client: TestClient, db: Session, ada: Caller
) -> None:
    cid = create(client, ada)["id"]
    db.add(
        Suppression(
            workspace_id=ada.user.workspace_id,
            email="gone@example.com",
            reason=SuppressionReason.UNSUBSCRIBED,
        )
    )
    db.commit()
    report = add_recipients(
        client,
        ada,
        cid,
        {
            "email": " Grace@Example.com ",
            "first_name": "Grace",
            "last_name": "Hopper",
            "company": "Navy",
            "title": "Rear Admiral",
            "fields": {"project": "COBOL"},
        },
        {"email": "not-an-address"},
        {"email": "grace@example.com", "first_name": "Again"},
        {"email": "gone@example.com"},
        {"email": "alan@example.com", "first_name": None},
    )
    assert report["added"] == 2
    skipped = report["skipped"]
    assert [(s["row"], s["email"]) for s in skipped] == [
        (2, "not-an-address"),
        (3, "grace@example.com"),
        (4, "gone@example.com"),
    ]
    assert skipped[0]["reason"].startswith("invalid address:")
    assert skipped[1]["reason"] == "duplicate in this list"
    assert skipped[2]["reason"] == "on the suppression list (unsubscribed)"

    again = add_recipients(client, ada, cid, {"email": "alan@example.com"})
    assert again == {
        "added": 0,
        "skipped": [{"row": 1, "email": "alan@example.com", "reason": "already in this campaign"}],
    }

    listed = client.get(f"/api/v1/campaigns/{cid}/recipients", headers=ada.headers)
    assert listed.status_code == 200
    grace, alan = listed.json()
    assert set(grace) == {
        "id",
        "email",
        "first_name",
        "last_name",
        "company",
        "title",
        "fields",
        "status",
        "steps_sent",
        "next_due_at",
        "last_sent_at",
        "held_until",
        "hold_reason",
        "status_reason",
        "timezone",
    }
    assert {k: grace[k] for k in grace if k != "id"} == {
        "email": "grace@example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "company": "Navy",
        "title": "Rear Admiral",
        "fields": {"project": "COBOL"},
        "status": "not_started",
        "steps_sent": 0,
        "next_due_at": None,
        "last_sent_at": None,
        "held_until": None,
        "hold_reason": "",
        "status_reason": "",
        "timezone": "",
    }
    assert (alan["email"], alan["first_name"]) == ("alan@example.com", "")
    counts = client.get(f"/api/v1/campaigns/{cid}", headers=ada.headers).json()["counts"]
    assert counts["recipients"] == 2


def test_recipients_added_to_a_running_campaign_are_scheduled(
    client: TestClient, ada: Caller
) -> None:
    cid = create(client, ada)["id"]
    add_recipients(client, ada, cid)
    act(client, ada, cid, "start")
    add_recipients(client, ada, cid, {"email": "late@example.com", "first_name": "Late"})
    listed = client.get(f"/api/v1/campaigns/{cid}/recipients", headers=ada.headers).json()
    assert all(row["next_due_at"] for row in listed)


def test_recipients_cannot_join_an_archived_campaign(client: TestClient, ada: Caller) -> None:
    cid = create(client, ada)["id"]
    act(client, ada, cid, "archive")
    response = client.post(
        f"/api/v1/campaigns/{cid}/recipients",
        json={"recipients": [{"email": "x@example.com"}]},
        headers=ada.headers,
    )
    error_of(response, 409, "not_editable")


def test_at_most_ten_thousand_recipients_per_request(
    client: TestClient, db: Session, ada: Caller
) -> None:
    cid = create(client, ada)["id"]
    rows = [{"email": f"r{i}@example.com"} for i in range(10_001)]
    response = client.post(
        f"/api/v1/campaigns/{cid}/recipients", json={"recipients": rows}, headers=ada.headers
    )
    error = error_of(response, 422, "too_many_recipients")
    assert "at most 10,000 recipients per request" in error["message"]
    assert db.scalar(select(func.count()).select_from(Enrollment)) == 0
    report = add_recipients(client, ada, cid, *rows[:10_000])
    assert (report["added"], report["skipped"]) == (10_000, [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "recipients"),
        ({"recipients": [{"first_name": "x"}]}, "recipients.0.email"),
        ({"recipients": [{"email": "a@example.com", "fields": {"n": {"deep": 1}}}]}, "recipients"),
    ],
)
def test_malformed_recipients_are_a_422(
    client: TestClient, ada: Caller, body: dict[str, Any], field: str
) -> None:
    cid = create(client, ada)["id"]
    response = client.post(f"/api/v1/campaigns/{cid}/recipients", json=body, headers=ada.headers)
    assert error_of(response, 422, "invalid_request")["message"].startswith(field)


def test_recipient_pages(client: TestClient, ada: Caller) -> None:
    cid = create(client, ada)["id"]
    add_recipients(client, ada, cid, *({"email": f"r{i}@example.com"} for i in range(5)))
    path = f"/api/v1/campaigns/{cid}/recipients"
    page = client.get(path, params={"offset": 2, "limit": 2}, headers=ada.headers).json()
    assert [row["email"] for row in page] == ["r2@example.com", "r3@example.com"]
    assert len(client.get(path, headers=ada.headers).json()) == 5
    assert client.get(path, params={"limit": 1000}, headers=ada.headers).status_code == 200
    for params in ({"limit": 1001}, {"limit": 0}, {"offset": -1}):
        error_of(client.get(path, params=params, headers=ada.headers), 422, "invalid_request")


def test_test_domains_are_accepted_only_with_the_sandbox(
    client: TestClient, database: Database, engine: Engine, ada: Caller
) -> None:
    cid = create(client, ada)["id"]
    refused = add_recipients(client, ada, cid, {"email": "grace@gmail.test"})
    assert refused["added"] == 0
    assert "special-use or reserved name" in refused["skipped"][0]["reason"]
    sandboxed = make_settings(database.url, sandbox=True)
    with TestClient(create_app(sandboxed, engine=engine)) as sandbox_client:
        accepted = add_recipients(sandbox_client, ada, cid, {"email": "grace@gmail.test"})
    assert (accepted["added"], accepted["skipped"]) == (1, [])


# Preview -------------------------------------------------------------------------------------


def test_preview(client: TestClient, ada: Caller) -> None:
    cid = create(client, ada)["id"]
    error_of(
        client.get(f"/api/v1/campaigns/{cid}/preview", headers=ada.headers), 404, "no_recipient"
    )
    add_recipients(
        client,
        ada,
        cid,
        {"email": "grace@example.com", "first_name": "Grace"},
        {"email": "alan@example.com", "first_name": "<Alan>", "company": "Bletchley"},
    )
    alan_id = client.get(f"/api/v1/campaigns/{cid}/recipients", headers=ada.headers).json()[1]["id"]
    first = client.get(f"/api/v1/campaigns/{cid}/preview", headers=ada.headers)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "subject": "Hi Grace",
        "body": "Hello from Ada Lovelace",
        "body_html": "",
        "recipient": {
            "id": first.json()["recipient"]["id"],
            "email": "grace@example.com",
        },
    }
    second = client.get(
        f"/api/v1/campaigns/{cid}/preview",
        params={"step": 2, "recipient_id": alan_id},
        headers=ada.headers,
    ).json()
    assert second["subject"] == "Re: Bletchley"
    assert second["body_html"] == "<p>Following up, <b>&lt;Alan&gt;</b></p>"
    assert second["recipient"] == {"id": alan_id, "email": "alan@example.com"}
    unknown_step = client.get(
        f"/api/v1/campaigns/{cid}/preview", params={"step": 3}, headers=ada.headers
    )
    error_of(unknown_step, 404, "unknown_step")


def test_preview_names_a_missing_merge_field(client: TestClient, ada: Caller) -> None:
    cid = create(client, ada)["id"]
    add_recipients(client, ada, cid, {"email": "anon@example.com"})
    response = client.get(f"/api/v1/campaigns/{cid}/preview", headers=ada.headers)
    assert "{{ first_name }}" in error_of(response, 422, "template_error")["message"]


def test_preview_of_a_forbidden_html_template_is_a_422(client: TestClient, ada: Caller) -> None:
    steps = [{"subject": "S", "body": "B", "body_html": "<p>{{ ''.__class__ }}</p>"}]
    cid = create(client, ada, steps=steps)["id"]
    add_recipients(client, ada, cid)
    response = client.get(f"/api/v1/campaigns/{cid}/preview", headers=ada.headers)
    assert "templates may not" in error_of(response, 422, "template_error")["message"]


def test_a_misspelt_filter_is_refused_rather_than_ignored(client: TestClient, ada: Caller) -> None:
    create(client, ada)
    answer = client.get("/api/v1/campaigns", params={"stauts": "paused"}, headers=ada.headers)
    assert answer.status_code == 422
    assert answer.json()["error"] == {
        "code": "unknown_parameter",
        "message": "Unknown query parameter 'stauts'; this endpoint accepts: q, sort, status.",
    }
    listed = client.get("/api/v1/campaigns", params={"status": "draft"}, headers=ada.headers)
    assert [c["name"] for c in listed.json()] == ["Backend engineers"]
