"""Replies recorded as the mailbox is read, on every host, and the Replies view around them.

A recipient answers the first step, another's mail system answers with an automatic reply:
each becomes one row (read again, still one), with the step it answered and a link that opens
the thread in the sender's own mailbox — Gmail's thread view, Graph's webLink, or an IMAP
account's webmail address once its user gives one. The owner (and admins) see them in the
Replies tab, on the campaign and on the recipient's page, and mark them interested; another
member sees none of them and can mark none.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from sendwell.accounts import service as accounts
from sendwell.db import session_scope
from sendwell.models import Mailbox, Reply, User, WebhookEvent
from sendwell.webhooks import service as webhooks
from tests.conftest import LOOPBACK, STRONG_PASSWORD, post_form
from tests.dispatch.conftest import World
from tests.dispatch.hosts import PEOPLE, Host, SandboxHost
from tests.dispatch.test_auto_reply_hold import GMAIL_VACATION
from tests.dispatch.test_every_host import THREE_STEPS, run_until
from tests.webhooks.conftest import admin_token

ANN, BOB, CY = PEOPLE


def replies_api(world: World, token: str, **query: str) -> list[dict[str, Any]]:
    response = world.client.get(
        "/api/v1/replies", params=query, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def reply_rows(world: World) -> int:
    with session_scope(world.factory) as db:
        return int(db.scalar(select(func.count()).select_from(Reply)) or 0)


def answered(world: World, host: Host) -> tuple[int, str]:
    """A campaign whose first step went to everyone; Ann replies, Bob's mail system answers
    automatically. Returns the campaign and the mailbox's cursor from before the answers."""
    campaign_id = world.campaign(THREE_STEPS, PEOPLE, sender=host.address)
    world.dispatcher().run_until_idle()
    first = {person: host.received(person)[0] for person in (ANN, BOB)}
    with session_scope(world.factory) as db:
        mailbox = db.get(Mailbox, world.mailbox_id(host.address))
        assert mailbox is not None
        assert mailbox.inbound_cursor is not None
        cursor = mailbox.inbound_cursor
    host.reply(first[ANN])
    host.answer(first[BOB], "Automatic reply: " + first[BOB].subject, GMAIL_VACATION)
    run_until(world, campaign_id, lambda: reply_rows(world) >= 2)
    return campaign_id, cursor


def test_replies_are_recorded_once_with_a_link_to_the_thread(
    host_world: tuple[World, Host],
) -> None:
    world, host = host_world
    campaign_id, cursor = answered(world, host)
    token = admin_token(world)
    [reply] = replies_api(world, token, kind="reply")
    [automatic] = replies_api(world, token, kind="auto_reply")
    assert (reply["recipient_email"], reply["step"], reply["campaign_id"]) == (ANN, 1, campaign_id)
    assert reply["interest"] == "none"
    assert ANN in reply["from_address"].lower()
    assert reply["subject"].startswith("Re: Quick question")
    assert (automatic["recipient_email"], automatic["step"]) == (BOB, 1)
    assert automatic["subject"].startswith("Automatic reply: ")

    # Read again from before the answers (a re-read, a history resync): nothing new.
    mailbox_id = world.mailbox_id(host.address)
    with session_scope(world.factory) as db:
        mailbox = db.get(Mailbox, mailbox_id)
        assert mailbox is not None
        mailbox.inbound_cursor = cursor
    world.dispatcher().inbound.read(mailbox_id)
    assert reply_rows(world) == 2
    assert len(replies_api(world, token)) == 2

    # The link opens the thread in the sender's own mailbox, the host's own way.
    url = reply["thread_url"]
    if host.name == "google":
        thread = reply["thread_id"]
        assert url == f"https://mail.google.com/mail/?authuser={host.address}#all/{thread}"
    elif host.name == "microsoft":
        assert url.startswith("https://outlook.office365.com/owa/?ItemID=")
        assert url.endswith("&exvsurl=1&viewmodel=ReadMessageItem")
    else:
        assert url is None
        assert "without a webmail address" in reply["thread_note"]
        page = f"/mailboxes/{mailbox_id}"
        assert "Webmail address" in world.client.get(page).text
        saved = post_form(
            world.client, page, f"{page}/webmail", {"webmail_url": "https://mail.example.com/"}
        )
        assert "Webmail address saved" in html.unescape(saved.text)
        [reply] = replies_api(world, token, kind="reply")
        assert reply["thread_url"] == "https://mail.example.com/"
        refused = post_form(
            world.client, page, f"{page}/webmail", {"webmail_url": "javascript:alert(1)"}
        )
        assert "full web address" in html.unescape(refused.text)
        [reply] = replies_api(world, token, kind="reply")
        assert reply["thread_url"] == "https://mail.example.com/"


def signed_in(world: World, email: str) -> TestClient:
    client = TestClient(world.client.app)
    response = post_form(
        client,
        "/sign-in",
        "/sign-in",
        {"email": email, "password": STRONG_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


def test_the_owner_marks_replies_and_no_one_else_sees_them(world: World) -> None:
    host = SandboxHost("google", "ada@gmail.test", world.sandbox)
    with session_scope(world.factory) as db:
        webhooks.create_endpoint(
            db,
            world.services.box,
            db.scalars(select(User)).one(),
            url="http://127.0.0.1:9/replies",  # an address literal: no DNS look-up
            events=["recipient.replied"],
            description="replies",
            outbound=LOOPBACK,
        )
    campaign_id, _cursor = answered(world, host)
    token = admin_token(world)
    [reply] = replies_api(world, token, kind="reply")

    # The reply's webhook names its row, for the API.
    with session_scope(world.factory) as db:
        [payload] = [
            json.loads(e.payload)
            for e in db.scalars(
                select(WebhookEvent).where(WebhookEvent.type == "recipient.replied")
            )
        ]
    assert payload["reply"] == {"id": reply["id"], "interest": "none"}

    # The Replies tab lists the reply, and the automatic one in a section of its own.
    tab = html.unescape(world.client.get("/messaging/replies").text)
    replies_part, automatic_part = tab.split("Automatic replies</h2>")
    assert ANN in replies_part
    assert BOB not in replies_part
    assert BOB in automatic_part
    assert ANN not in automatic_part
    assert "Open thread" in replies_part

    # Marked from the tab: the campaign counts one Interested.
    marked = post_form(
        world.client,
        "/messaging/replies",
        f"/replies/{reply['id']}/interest",
        {"interest": "interested", "back": "/messaging/replies"},
    )
    assert f"{ANN} is marked Interested." in html.unescape(marked.text)
    assert "by Ada Lovelace, " in html.unescape(marked.text)
    campaign_page = html.unescape(world.client.get(f"/campaigns/{campaign_id}").text)
    assert re.search(r"<dt>Interested</dt><dd[^>]*>1</dd>", campaign_page)
    api_campaign = world.client.get(
        f"/api/v1/campaigns/{campaign_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert api_campaign["counts"]["interested"] == 1
    only = replies_api(world, token, interest="interested")
    assert [r["id"] for r in only] == [reply["id"]]
    assert only[0]["marked_by_id"] is not None
    assert only[0]["marked_at"]

    # Filters: by campaign and interest; a filter that names nothing of the user's says so.
    filtered = html.unescape(
        world.client.get(f"/messaging/replies?campaign={campaign_id}&interest=interested").text
    )
    assert ANN in filtered.split("Automatic replies</h2>")[0]
    nothing = html.unescape(world.client.get("/messaging/replies?interest=not_interested").text)
    assert "No reply matches these filters" in nothing
    for query in ("campaign=987654", "campaign=²", "interest=maybe"):
        page = html.unescape(world.client.get(f"/messaging/replies?{query}").text)
        assert 'role="alert"' in page
        assert ANN in page

    # The recipient's page has it too; the API changes it back.
    ann_id = reply["recipient_id"]
    ann_page = html.unescape(world.client.get(f"/campaigns/{campaign_id}/recipients/{ann_id}").text)
    assert "Interested" in ann_page
    assert "Mark not interested" in ann_page
    patched = world.client.patch(
        f"/api/v1/replies/{reply['id']}",
        json={"interest": "not_interested"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert patched.status_code == 200
    assert patched.json()["interest"] == "not_interested"
    wrong = world.client.patch(
        f"/api/v1/replies/{reply['id']}",
        json={"interest": "maybe"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert wrong.status_code == 422
    assert replies_api(world, token, interest="interested") == []
    assert (
        world.client.get(
            "/api/v1/replies?interest=maybe", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 422
    )

    # Another member: no reply to see, none to mark.
    with session_scope(world.factory) as db:
        other = accounts.create_user(
            db, email="bea@example.com", password=STRONG_PASSWORD, name="Bea"
        )
        bea_token = accounts.create_api_token(db, db.get(User, other.id) or other, "bea")[1]
    bea = signed_in(world, "bea@example.com")
    bea_tab = html.unescape(bea.get("/messaging/replies").text)
    assert ANN not in bea_tab
    assert BOB not in bea_tab
    assert "No replies yet" in bea_tab
    refused = post_form(
        bea,
        "/messaging/replies",
        f"/replies/{reply['id']}/interest",
        {"interest": "interested"},
        follow_redirects=False,
    )
    assert refused.status_code == 404
    assert replies_api(world, bea_token) == []
    assert (
        world.client.patch(
            f"/api/v1/replies/{reply['id']}",
            json={"interest": "interested"},
            headers={"Authorization": f"Bearer {bea_token}"},
        ).status_code
        == 404
    )
    [still] = replies_api(world, token, kind="reply")
    assert still["interest"] == "not_interested"
