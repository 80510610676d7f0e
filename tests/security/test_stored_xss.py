"""Markup typed by users, imported from CSV files or sent back by a provider is shown as text.

Every place such text is stored through the product itself — a user's name, a campaign's name,
subject and body, a recipient's fields and custom CSV columns (their values and headers), a
rejected CSV row, an API token's name, a sender name and signature, a provider's error on the
sign-in callback and a provider's reason for a broken connection — is then looked at on every
page that shows it: the raw markup never appears, its escaped text does.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from sendwell.app import create_app
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.mailboxes import service as mailboxes
from sendwell.models import Enrollment, Mailbox, MailboxEventKind, MailboxStatus
from tests.conftest import STRONG_PASSWORD, csrf_from, post_form
from tests.mailboxes.conftest import link, start_link

PAYLOAD = '<script>alert("qx")</script><img src=x onerror=alert(1)>'
RAW = ("<script>alert", "<img src=x")
ESCAPED = "&lt;script&gt;alert("


def _shown_escaped(html: str, where: str) -> list[str]:
    problems = [f"{where}: raw {raw!r}" for raw in RAW if raw in html]
    if ESCAPED not in html:
        problems.append(f"{where}: the text is not shown at all")
    return problems


def _arrange(client: TestClient) -> dict[str, Any]:
    """Store the markup everywhere a user, a file or a provider can put text."""
    post_form(
        client,
        "/setup",
        "/setup",
        {"email": "ada@example.com", "password": STRONG_PASSWORD, "name": f"Ada {PAYLOAD}"},
    )
    link(client, "ada@gmail.test")
    app: Any = client.app
    with session_scope(app.state.session_factory) as db:
        mailbox_id = db.scalars(select(Mailbox.id)).one()
    saved = post_form(
        client,
        f"/mailboxes/{mailbox_id}",
        f"/mailboxes/{mailbox_id}/settings",
        {
            "display_name": f"Ada {PAYLOAD}",
            "signature": PAYLOAD,
            "daily_cap": "",
            "min_gap_seconds": "",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    created = post_form(
        client,
        "/campaigns/new",
        "/campaigns/new",
        {
            "name": f"Launch {PAYLOAD}",
            "mailbox_id": str(mailbox_id),
            "days": "mon",
            "step_subject": f"Hi {{{{ first_name }}}} {PAYLOAD}",
            "step_body": f"Hello {{{{ company }}}} {{{{ note | default('') }}}} {PAYLOAD}",
            "step_delay": "0",
            "step_unit": "days",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    campaign_id = int(created.headers["location"].rsplit("/", 1)[1])
    page = f"/campaigns/{campaign_id}"
    post_form(
        client,
        page,
        f"{page}/recipients",
        {"email": "grace@example.com", "first_name": PAYLOAD, "company": PAYLOAD},
    )
    csv_file = (
        f'email,first_name,note,"{PAYLOAD}"\n'  # a custom column named with markup
        f"linus@example.com,Linus,{PAYLOAD},x\n"
        f'"{PAYLOAD}",,,\n'  # a rejected row: its address is shown in the report
    )
    mapping = client.post(
        f"{page}/recipients/import",
        data={"csrftoken": csrf_from(client.get(page).text)},
        files={"file": ("people.csv", csv_file.encode(), "text/csv")},
    )
    assert mapping.status_code == 200, mapping.text
    action = re.search(r'action="(/campaigns/\d+/recipients/import/[^"]+)"', mapping.text)
    assert action is not None
    imported = client.post(action.group(1), data={"csrftoken": csrf_from(mapping.text)})
    assert imported.status_code == 200, imported.text
    tokens = post_form(client, "/account", "/account/tokens", {"name": PAYLOAD})
    with session_scope(app.state.session_factory) as db:
        enrollment_id = db.scalars(
            select(Enrollment.id).where(Enrollment.email == "linus@example.com")
        ).one()
    return {
        "mailbox_id": mailbox_id,
        "campaign_id": campaign_id,
        "enrollment_id": enrollment_id,
        "import": imported.text,
        "mapping": mapping.text,
        "token": tokens.text,
    }


def test_markup_is_shown_as_text_on_every_page(security_settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(security_settings, engine=engine)) as client:
        ids = _arrange(client)
        campaign, enrollment = ids["campaign_id"], ids["enrollment_id"]
        pages = {
            "the import report": ids["import"],
            "the import's mapping page": ids["mapping"],
            "the new token": ids["token"],
        }
        for path in (
            "/messaging/campaigns",
            f"/campaigns/{campaign}",
            f"/campaigns/{campaign}?recipient={enrollment}",
            f"/campaigns/{campaign}/edit",
            f"/campaigns/{campaign}/message?recipient={enrollment}",
            f"/campaigns/{campaign}/start",
            f"/campaigns/{campaign}/recipients/{enrollment}",
            "/messaging/settings",
            f"/mailboxes/{ids['mailbox_id']}",
            "/account",
        ):
            pages[path] = client.get(path).text
        problems = [p for where, html in pages.items() for p in _shown_escaped(html, where)]
        assert not problems, "\n".join(problems)
        assert (
            PAYLOAD.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
            in (pages[f"/campaigns/{campaign}?recipient={enrollment}"])
        ), "the preview shows the recipient's value, escaped once"


def test_provider_error_text_is_shown_as_text(security_settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(security_settings, engine=engine)) as client:
        post_form(
            client, "/setup", "/setup", {"email": "ada@example.com", "password": STRONG_PASSWORD}
        )
        problems = []
        for provider, address in (
            ("google", "ada@gmail.test"),
            ("microsoft", "ada@x.outlook.test"),
        ):
            location = start_link(client, address).headers["location"]
            state = re.search(r"[?&]state=([^&]+)", location)
            assert state
            answer = client.get(
                f"/mailboxes/callback/{provider}",
                params={"state": state.group(1), "error": PAYLOAD, "error_description": PAYLOAD},
            )
            problems += _shown_escaped(answer.text, f"the {provider} callback's error")

        link(client, "ada@gmail.test")
        app: Any = client.app
        with session_scope(app.state.session_factory) as db:
            mailbox = db.scalars(select(Mailbox)).one()
            mailboxes.transition(
                db,
                mailbox,
                MailboxStatus.REAUTH_REQUIRED,
                kind=MailboxEventKind.REAUTH_REQUIRED,
                reason=f"Google says the grant is no longer valid: {PAYLOAD}",
                code=PAYLOAD,
            )
            mailbox_id = mailbox.id
        for path in ("/messaging/settings", f"/mailboxes/{mailbox_id}", "/messaging/campaigns"):
            problems += _shown_escaped(client.get(path).text, path)
        assert not problems, "\n".join(problems)


def test_team_names_and_a_delegation_note_are_shown_as_text(
    security_settings: Settings, engine: Engine
) -> None:
    """A teammate's name (chosen on the invitation page) and the note of a request to send
    from someone's mailbox, on every page that shows them, to both sides."""
    from sendwell.models import Delegation, User
    from tests.teams.conftest import accept, invite

    with TestClient(create_app(security_settings, engine=engine)) as ada:
        post_form(
            ada,
            "/setup",
            "/setup",
            {"email": "ada@example.com", "password": STRONG_PASSWORD, "name": f"Ada {PAYLOAD}"},
        )
        grace = accept(ada.app, invite(ada, "grace@example.com"), f"Grace {PAYLOAD}")
        app: Any = ada.app
        with session_scope(app.state.session_factory) as db:
            ada_id = db.scalars(select(User.id).where(User.email == "ada@example.com")).one()
            grace_id = db.scalars(select(User.id).where(User.email == "grace@example.com")).one()
        asked = post_form(
            grace,
            "/messaging/settings",
            "/delegations",
            {"teammate_id": str(ada_id), "note": PAYLOAD},
        )
        assert asked.status_code == 200, asked.text
        with session_scope(app.state.session_factory) as db:
            delegation_id = db.scalars(select(Delegation.id)).one()
        pages = {
            f"{who} {path}": client.get(path).text
            for who, client, path in (
                ("ada", ada, "/team"),
                ("ada", ada, f"/team/users/{grace_id}"),
                ("ada", ada, "/messaging/settings"),
                ("ada", ada, f"/delegations/{delegation_id}"),
                ("grace", grace, "/messaging/settings"),
                ("grace", grace, f"/delegations/{delegation_id}"),
                ("grace", grace, "/mailboxes/link?own=teammate"),
            )
        }
        problems = [p for where, html in pages.items() for p in _shown_escaped(html, where)]
        assert not problems, "\n".join(problems)
