"""Whatever text a JSON body holds — lone surrogates included — the API answers without a 5xx.

JSON's `\\ud800` escape decodes to a surrogate that is not a character: no database or email
can hold one. It was a 500 on a campaign's name, a step's subject and a recipient's first
name; every request body now refuses it as a 422, and any other text is stored as sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.app import create_app
from sendwell.models import User
from tests.conftest import Database, create_first_account, make_settings
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox

# Any code point, surrogates included (Hypothesis leaves them out unless asked).
any_text = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=8)
LONE = "\ud800"


@pytest.fixture
def api(database: Database, engine: Engine, sandbox: Sandbox, db: Session) -> Iterator[Any]:
    config = make_settings(database.url, sandbox=True, sandbox_url=sandbox.url)
    with TestClient(create_app(config, engine=engine)) as client:
        create_first_account(client)
        link(client, "ada@gmail.test")
        user = db.scalars(select(User)).one()
        _token, plaintext = accounts.create_api_token(db, user, "unicode")
        db.commit()
        headers = {"Authorization": f"Bearer {plaintext}", "Content-Type": "application/json"}
        mailbox = client.get("/api/v1/mailboxes", headers=headers).json()[0]["id"]
        yield client, headers, mailbox


def _post(api: Any, path: str, body: dict[str, Any]) -> Any:
    client, headers, _mailbox = api
    # json.dumps escapes a surrogate as "\ud800": valid JSON, as a client would send it.
    return client.post(f"/api/v1{path}", content=json.dumps(body), headers=headers)


def _campaign(api: Any, name: str = "Hello", subject: str = "Hi") -> Any:
    steps = [{"subject": subject, "body": "Hello"}]
    return _post(api, "/campaigns", {"name": name, "mailbox_id": api[2], "steps": steps})


def test_a_lone_surrogate_is_a_422_in_every_field_that_was_a_500(api: Any) -> None:
    campaign = _campaign(api).json()["id"]
    answers = [
        _campaign(api, name=f"Q{LONE}"),
        _campaign(api, subject=f"Hi {LONE}"),
        _post(
            api,
            f"/campaigns/{campaign}/recipients",
            {"recipients": [{"email": "ann@example.com", "first_name": LONE}]},
        ),
        _post(api, "/webhooks", {"url": "https://example.com/", "events": [], "description": LONE}),
        _post(api, "/tokens", {"name": LONE}),
    ]
    for response in answers:
        assert response.status_code == 422, response.text
        assert "lone UTF-16 surrogate" in response.json()["error"]["message"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=any_text, subject=any_text, first_name=any_text)
def test_any_text_is_stored_or_refused_never_a_500(
    api: Any, name: str, subject: str, first_name: str
) -> None:
    created = _campaign(api, name=f"C {name}", subject=f"S {subject}")
    assert created.status_code in (201, 422), created.text
    if created.status_code == 422:
        return
    added = _post(
        api,
        f"/campaigns/{created.json()['id']}/recipients",
        {"recipients": [{"email": "ann@example.com", "first_name": first_name}]},
    )
    assert added.status_code in (200, 422), added.text
