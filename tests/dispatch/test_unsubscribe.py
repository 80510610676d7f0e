"""RFC 8058 one-click unsubscribe, as a mail client does it: the link from a sent message's
List-Unsubscribe header, posted with no cookies and no CSRF token.

Opening the link only asks; the one-click post (any number of times) stops the address in
every campaign of the workspace and puts it on the suppression list; a tampered link is 404.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from email.header import decode_header, make_header
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import select

from sendwell.db import session_scope
from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.models import (
    Campaign,
    CampaignStatus,
    EnrollmentStatus,
    Suppression,
    SuppressionReason,
)
from tests.dispatch.conftest import World
from tests.security import log_watch

TWO_STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0),
    ("Re: Hello {{ first_name }}", "Following up.", 1),
]
ONE_CLICK = {
    "content": b"List-Unsubscribe=One-Click",
    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
}


def unsubscribe_url(message: dict[str, Any]) -> str:
    """The List-Unsubscribe URL as a lenient mail client reads it (RFC 2047 words decoded)."""
    value = str(make_header(decode_header(message["headers"]["List-Unsubscribe"])))
    return "".join(value.split()).removeprefix("<").removesuffix(">")


def suppressions(world: World) -> list[tuple[str, SuppressionReason]]:
    with session_scope(world.factory) as db:
        return [(s.email, s.reason) for s in db.scalars(select(Suppression))]


def test_one_click_unsubscribe_stops_the_address_in_every_campaign(world: World) -> None:
    first_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    second_id = world.campaign(TWO_STEPS, ["ann@example.com", "cy@example.com"])
    dispatcher = world.app_dispatcher()
    dispatcher.run_until_idle()
    to_ann = [m for m in world.sent() if parseaddr(str(m["to"][0]))[1] == "ann@example.com"]
    assert len(to_ann) == 2
    headers = to_ann[0]["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = urlsplit(unsubscribe_url(to_ann[0]))
    assert (url.scheme, url.netloc) == ("http", "testserver")
    link = url.path
    assert link.startswith("/u/")

    # A mail client: no session, no CSRF cookie.
    mail_client = TestClient(world.client.app)
    opened = mail_client.get(link)
    assert opened.status_code == 200
    assert "Unsubscribe ann@example.com?" in opened.text
    # Opening the link (as link scanners do) changes nothing.
    assert suppressions(world) == []
    assert world.enrollment(first_id, "ann@example.com").status is EnrollmentStatus.IN_PROGRESS

    for _click in range(2):
        done = mail_client.post(link, **ONE_CLICK)
        assert done.status_code == 200
        assert "You are unsubscribed" in done.text
        assert not mail_client.cookies.get("sendwell_session")

    assert suppressions(world) == [("ann@example.com", SuppressionReason.UNSUBSCRIBED)]
    for campaign_id in (first_id, second_id):
        ann = world.enrollment(campaign_id, "ann@example.com")
        assert ann.status is EnrollmentStatus.UNSUBSCRIBED
        assert ann.next_due_at is None

    world.due_now(first_id)
    world.due_now(second_id)
    dispatcher.run_until_idle()

    assert set(world.sent_by_step(first_id)) == {
        ("ann@example.com", 1),
        ("bob@example.com", 1),
        ("bob@example.com", 2),
    }
    assert set(world.sent_by_step(second_id)) == {
        ("ann@example.com", 1),
        ("cy@example.com", 1),
        ("cy@example.com", 2),
    }
    with session_scope(world.factory) as db:
        for campaign_id in (first_id, second_id):
            campaign = db.get(Campaign, campaign_id)
            assert campaign is not None
            assert campaign.status is CampaignStatus.COMPLETED


def test_a_tampered_unsubscribe_link_is_not_found(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"])
    world.app_dispatcher().run_until_idle()
    (message,) = world.sent()
    link = urlsplit(unsubscribe_url(message)).path
    token = link.removeprefix("/u/")
    # Change the payload, not the signature's last character (whose spare bits may not count).
    tampered = "/u/" + ("B" if token[2] != "B" else "C").join((token[:2], token[3:]))

    mail_client = TestClient(world.client.app)
    for response in (mail_client.get(tampered), mail_client.post(tampered, **ONE_CLICK)):
        assert response.status_code == 404
        assert "This unsubscribe link is not valid" in response.text
    assert suppressions(world) == []
    assert world.enrollment(campaign_id, "ann@example.com").status is EnrollmentStatus.IN_PROGRESS


def test_the_list_unsubscribe_header_is_a_plain_url_for_any_address(world: World) -> None:
    address = "grace.hopper@example.com"
    world.campaign(TWO_STEPS, [address])
    world.app_dispatcher().run_until_idle()
    (message,) = world.sent()
    value = message["headers"]["List-Unsubscribe"]
    # Folding whitespace may split it across lines; anything else must be the URL itself.
    plain = "".join(value.split())
    match = re.fullmatch(r"<(http://testserver/u/[A-Za-z0-9_.-]+)>", plain)
    assert match, value
    done = TestClient(world.client.app).post(urlsplit(match.group(1)).path, **ONE_CLICK)
    assert "You are unsubscribed" in done.text
    assert suppressions(world) == [(address, SuppressionReason.UNSUBSCRIBED)]


def test_an_unsubscribe_link_expires_after_its_lifetime_and_older_links_still_work(
    world: World,
) -> None:
    secret = world.settings.secret_key
    links = UnsubscribeLinks("http://testserver", secret, timedelta(days=400))
    fresh = urlsplit(links.url(1, "ann@example.com")).path.removeprefix("/u/")
    assert links.read(fresh) == (1, "ann@example.com")
    assert not links.expired(fresh)

    class MadeLongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 401 * 24 * 3600

    old = URLSafeTimedSerializer(secret, salt="unsubscribe-expiring", signer=MadeLongAgo)
    stale = old.dumps([1, "ann@example.com"])
    assert links.read(stale) is None
    assert links.expired(stale)
    page = TestClient(world.client.app).get(f"/u/{stale}")
    assert page.status_code == 404
    assert "This unsubscribe link has expired" in page.text
    # Links in mail sent before links expired carry no time stamp; they keep working.
    older = URLSafeSerializer(world.settings.secret_key, salt="unsubscribe").dumps([1, "b@x.io"])
    assert links.read(older) == (1, "b@x.io")


def test_unsubscribe_links_stay_out_of_the_request_log(world: World) -> None:
    world.campaign(TWO_STEPS, ["ann@example.com"])
    world.app_dispatcher().run_until_idle()
    (message,) = world.sent()
    link = urlsplit(unsubscribe_url(message)).path
    log_watch.WATCH.take()
    mail_client = TestClient(world.client.app)
    mail_client.get(link)
    mail_client.post(link, **ONE_CLICK)
    lines = log_watch.WATCH.take()
    requests = [line for line in lines if '"request"' in line and "/u/" in line]
    assert len(requests) == 2
    assert all(link.removeprefix("/u/") not in line for line in lines)
