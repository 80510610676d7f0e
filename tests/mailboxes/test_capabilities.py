"""The first-run page and the Settings tab say what this server can do and how to change it."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from sendwell.app import create_app
from sendwell.config import Settings
from tests.conftest import Database, create_first_account, make_settings


def server_panel(page: str) -> dict[str, str]:
    """The "This server" panel as a reader sees it: each line's name → its text."""
    panel = page.split('id="server-title"', 1)[1].split("</section>", 1)[0]
    items = re.findall(r'<li class="capability">(.*?)</li>', panel, re.DOTALL)
    lines = {}
    for item in items:
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", item)).split())
        name = re.search(r'class="capability-name">([^<]+)<', item)
        assert name, item
        lines[html.unescape(name.group(1))] = text
    return lines


def panels(settings: Settings, engine: Engine) -> tuple[dict[str, str], dict[str, str]]:
    """The panel on the first-run page, then on the Settings tab once signed in."""
    with TestClient(create_app(settings, engine=engine)) as client:
        first_run = server_panel(client.get("/setup").text)
        create_first_account(client)
        return first_run, server_panel(client.get("/messaging/settings").text)


def test_a_bare_server_says_what_is_off_and_the_line_that_turns_it_on(
    database: Database, engine: Engine
) -> None:
    for lines in panels(make_settings(database.url), engine):
        google = lines["Google (Gmail, Google Workspace)"]
        assert google.startswith("Google (Gmail, Google Workspace) Off")
        assert "Set SENDWELL_GOOGLE_CLIENT_ID and SENDWELL_GOOGLE_CLIENT_SECRET" in google
        microsoft = lines["Microsoft (Outlook, Microsoft 365)"]
        assert "Off" in microsoft
        assert "SENDWELL_MICROSOFT_CLIENT_ID and SENDWELL_MICROSOFT_CLIENT_SECRET" in microsoft
        assert "Live" in lines["IMAP/SMTP: Other (any host with IMAP and SMTP)"]
        mail = lines["Notification email"]
        assert "Off Nobody is emailed when an account needs reauthentication" in mail
        assert (
            "Set SENDWELL_SMTP_URL=smtp://user:password@smtp.example.com:587"
            "?from=sendwell@example.com" in mail
        )
        assert "Sandbox" not in lines


def test_the_sandbox_is_called_a_demo(database: Database, engine: Engine) -> None:
    settings = make_settings(database.url, sandbox=True)
    for lines in panels(settings, engine):
        assert "A demo" in lines["Sandbox"]
        assert "SENDWELL_SANDBOX=0" in lines["Sandbox"]
        assert "Demo Emulated by the sandbox" in lines["Google (Gmail, Google Workspace)"]
        assert "Demo" in lines["Microsoft (Outlook, Microsoft 365)"]


def test_configured_hosts_and_mail_are_live(database: Database, engine: Engine) -> None:
    settings = make_settings(
        database.url,
        google_client_id="client.apps.googleusercontent.com",
        google_client_secret="secret",
        smtp_url="smtp://mailer.example.com:587?from=sendwell@example.com",
    )
    for lines in panels(settings, engine):
        assert "Live Google accounts can be linked." in lines["Google (Gmail, Google Workspace)"]
        assert "Off" in lines["Microsoft (Outlook, Microsoft 365)"]
        mail = lines["Notification email"]
        assert "Live Owners are emailed" in mail
        assert "SENDWELL_SMTP_URL" not in mail
