"""Oversized bodies and uploads are refused with a sentence naming the limit, and change nothing.

The limits are settings (`SENDWELL_MAX_REQUEST_MB`, `SENDWELL_MAX_UPLOAD_MB`); here they are
set small so that the tests stay quick.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.models import Campaign, Enrollment, User
from tests.conftest import Database, create_first_account, csrf_from, make_settings
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox

REQUEST_LIMIT_MB = 0.02
UPLOAD_LIMIT_MB = 0.1
SENTENCE = "This request is larger than Sendwell accepts"


@pytest.fixture
def client(database: Database, engine: Engine, sandbox: Sandbox) -> Iterator[TestClient]:
    settings = make_settings(
        database.url,
        sandbox=True,
        sandbox_url=sandbox.url,
        dns_timeout_seconds=0.3,
        max_request_mb=REQUEST_LIMIT_MB,
        max_upload_mb=UPLOAD_LIMIT_MB,
    )
    with TestClient(create_app(settings, engine=engine)) as test_client:
        create_first_account(test_client)
        yield test_client


def _campaign(client: TestClient, db: Session) -> int:
    link(client, "ada@gmail.test")
    token = csrf_from(client.get("/campaigns/new").text)
    mailbox = client.get("/api/v1/mailboxes", headers=_bearer(db)).json()[0]["id"]
    created = client.post(
        "/campaigns/new",
        data={
            "csrftoken": token,
            "name": "Limits",
            "mailbox_id": str(mailbox),
            "days": "mon",
            "step_subject": "Hi",
            "step_body": "Hello",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    return int(created.headers["location"].rsplit("/", 1)[1])


def _bearer(db: Session) -> dict[str, str]:
    user = db.scalars(select(User)).one()
    _token, plaintext = accounts.create_api_token(db, user, "limits")
    db.commit()
    return {"Authorization": f"Bearer {plaintext}"}


def _count(db: Session, model: type[Campaign] | type[Enrollment]) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_an_oversized_form_is_refused_with_the_limit(client: TestClient, db: Session) -> None:
    token = csrf_from(client.get("/campaigns/new").text)
    response = client.post(
        "/campaigns/new",
        data={"csrftoken": token, "name": "Big", "step_body": "x" * 30_000},
    )
    assert response.status_code == 413
    assert f"{SENTENCE} (0.02 MB)" in response.text
    assert response.headers["content-security-policy"]
    assert _count(db, Campaign) == 0


def test_an_oversized_json_body_is_a_json_error(client: TestClient, db: Session) -> None:
    response = client.post(
        "/api/v1/campaigns",
        json={"name": "Big", "mailbox_id": 1, "steps": [{"subject": "s", "body": "x" * 30_000}]},
        headers=_bearer(db),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert "0.02 MB" in response.json()["error"]["message"]


def test_a_body_without_a_declared_length_is_counted(client: TestClient, db: Session) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "Big", "mailbox_id": 1, "steps": [{"subject": "s", "body": "'
        for _ in range(30):
            yield b"x" * 1_000
        yield b'"}]}'

    response = client.post(
        "/api/v1/campaigns",
        content=chunks(),
        headers={**_bearer(db), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_uploads_have_their_own_larger_limit(client: TestClient, db: Session) -> None:
    campaign_id = _campaign(client, db)
    rows = "".join(f"person{i:05}@example.com,Someone\n" for i in range(1_500))
    fits = ("email,first_name\n" + rows).encode()
    assert REQUEST_LIMIT_MB * 1e6 < len(fits) < UPLOAD_LIMIT_MB * 1e6
    token = csrf_from(client.get(f"/campaigns/{campaign_id}").text)
    mapping = client.post(
        f"/campaigns/{campaign_id}/recipients/import",
        data={"csrftoken": token},
        files={"file": ("people.csv", fits, "text/csv")},
    )
    assert mapping.status_code == 200
    action = re.search(r'action="(/campaigns/\d+/recipients/import/[^"]+)"', mapping.text)
    assert action is not None
    accepted = client.post(action.group(1), data={"csrftoken": token})
    assert accepted.status_code == 200
    assert _count(db, Enrollment) == 1_500

    too_big = fits + ("".join(f"more{i:05}@example.com,Someone\n" for i in range(3_000))).encode()
    refused = client.post(
        f"/campaigns/{campaign_id}/recipients/import",
        data={"csrftoken": token},
        files={"file": ("people.csv", too_big, "text/csv")},
    )
    assert refused.status_code == 413
    assert f"{SENTENCE} (0.1 MB)" in refused.text
    assert _count(db, Enrollment) == 1_500
