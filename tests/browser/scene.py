"""A workspace in the middle of real use, built through the product on a live server.

Used by the phone-width test (every page, in every state that matters) and by the tour
(`make tour`, the screenshots in docs/tour.md). Everything is made as a user would make it —
the first account, three Gmail accounts linked through the sandbox's consent pages, an API
token from the Account page — and then, for speed, through the JSON API with that token:

- ada@gmail.test sends "Spring outreach" (three steps, six recipients): one email has gone,
  the account's ten-minute gap holds the rest, so the campaign is caught while sending.
  "Platform engineers" is a draft on the same account with four follow-ups.
- broken@gmail.test sent one email of "Data team hires", then its grant was revoked at the
  host: the health check marks it "reauthentication required", the campaign is paused and
  every signed-in page shows the banner with its Reauthenticate button.
- back@gmail.test sent one email of "Design leads", was removed and linked again: its
  campaign waits for Resume, so the Resume preview and "Resume all" have something to show.
- a webhook endpoint; Grace Hopper, a member, who asks to send from Ada's account (a
  delegation waiting for approval); Linus, invited and not yet signed up.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.test_campaigns import FAST, SENDER, sign_up_and_link, upload_csv, wait_for_sent
from tests.browser.test_mailboxes import allow_all_permissions, link_account, open_settings_tab
from tests.conftest import LOOPBACK_ALLOWED, STRONG_PASSWORD

BROKEN = "broken@gmail.test"
BACK = "back@gmail.test"
MEMBER = "grace@example.com"  # Grace Hopper signs in with STRONG_PASSWORD
GAP_SECONDS = 600  # one email goes at once; the next waits, so a campaign is seen mid-way

# The server settings the scene needs: background work every few seconds.
# The webhook endpoint is on this machine: the server may call loopback addresses.
SERVER_ENV = {**FAST, "SENDWELL_OUTBOUND_ALLOW": LOOPBACK_ALLOWED}

SENDING = "Spring outreach"
DRAFT = "Platform engineers"
BROKEN_CAMPAIGN = "Data team hires"
BACK_CAMPAIGN = "Design leads"

PEOPLE = [
    ("maximiliane.oberhausen-delacroix@very-long-company-name.example", "Maximiliane", "Globex"),
    ("grace.lee@initech.example", "Grace", "Initech"),
    ("sam.okafor@umbrella.example", "Sam", "Umbrella"),
    ("ines.moreau@hooli.example", "Inès", "Hooli"),
    ("kenji.watanabe@stark.example", "Kenji", "Stark Industries"),
    ("olga.petrova@wayne.example", "Olga", "Wayne Enterprises"),
]


@dataclass(frozen=True)
class Scene:
    """The ids and links of what was built, by the names the routes use."""

    server: str
    token: str
    ada_mailbox: int
    broken_mailbox: int
    back_mailbox: int
    sending: int
    sending_recipient: int  # received step 1
    draft: int
    draft_recipient: int
    broken_campaign: int
    broken_recipient: int
    back_campaign: int
    back_recipient: int
    endpoint: int
    member: int
    delegation: int
    invitation_url: str  # Linus's, still open
    unsubscribe_url: str  # from the List-Unsubscribe header of an email sent
    import_path: str  # the draft's uploaded CSV, waiting on its mapping page


def api(server: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else None


def link(page: Page, email: str) -> None:
    """Settings tab → Link an email account → the host's sign-in and consent pages."""
    open_settings_tab(page)
    link_account(page, email)
    allow_all_permissions(page)
    expect(page.get_by_role("status").first).to_contain_text(email)


def create_token(page: Page, server: str) -> str:
    """Account and API tokens → New token name → Create token: shown once."""
    page.goto(f"{server}/account")
    page.get_by_label("New token name").fill("tour")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("New API token").input_value()
    assert token.startswith("sw_"), token
    return token


def _campaign(client: httpx.Client, name: str, mailbox: int, steps: int) -> int:
    subjects = ["Quick question, {{ first_name }}", "", "", "", "", ""]
    bodies = [
        "Hi {{ first_name }},\n\nI lead hiring at Acme and saw your work at {{ company }}.\n"
        "Would you be open to a short call next week?\n\nAda",
        "Hi {{ first_name }}, just bringing this to the top of your inbox.",
        "Hi {{ first_name }}, one last note: the role is remote-friendly.",
        "Hi {{ first_name }}, should I close your file for now?",
        "Hi {{ first_name }}, a final check-in before the role closes.",
    ]
    body = {
        "name": name,
        "mailbox_id": mailbox,
        "start_delay_minutes": 0,
        "steps": [
            {
                "subject": subjects[index],
                "body": bodies[index],
                "delay_minutes": 0 if not index else 60 * 24 * (2 + index),
            }
            for index in range(steps)
        ],
    }
    campaign = _ok(client.post("/campaigns", json=body))
    recipients = [
        {"email": email, "first_name": first, "company": company}
        for email, first, company in PEOPLE
    ]
    _ok(client.post(f"/campaigns/{campaign['id']}/recipients", json={"recipients": recipients}))
    return int(campaign["id"])


def _recipients(client: httpx.Client, campaign: int) -> list[dict[str, Any]]:
    found = _ok(client.get(f"/campaigns/{campaign}/recipients"))
    rows = found["items"] if isinstance(found, dict) else found
    return list(rows)


def _sent_recipient(client: httpx.Client, server: str, campaign: int, mailbox: str) -> int:
    """The recipient who received the campaign's first email (the account sent one)."""
    sent = wait_for_sent(server, 1, mailbox=mailbox, timeout=60)
    to = sent[0].to
    return next(int(r["id"]) for r in _recipients(client, campaign) if r["email"] == to)


def _wait_for_status(client: httpx.Client, mailbox: int, status: str) -> None:
    deadline = time.monotonic() + 60
    while _ok(client.get(f"/mailboxes/{mailbox}"))["status"] != status:
        assert time.monotonic() < deadline, f"mailbox {mailbox} never became {status}"
        time.sleep(0.3)


def _unsubscribe_url(server: str) -> str:
    response = httpx.get(f"{server}/sandbox/admin/messages", params={"mailbox": SENDER})
    header = _ok(response)[0]["headers"]["List-Unsubscribe"]
    return str(header).strip("<>")


def _member_asks_for_adas_account(page: Page, invite_url: str) -> None:
    """Grace signs up from her invitation link and asks to send from Ada's account."""
    page.goto(invite_url)
    page.get_by_label("Your name").fill("Grace Hopper")
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("status")).to_have_text("Welcome to Sendwell, Grace Hopper.")
    open_settings_tab(page)
    page.get_by_role("button", name="Link an email account").click()
    dialog = page.get_by_role("dialog", name="Link an email account")
    dialog.get_by_label("A teammate's email account").check()
    dialog.get_by_role("button", name="Continue").click()
    dialog.get_by_label("Teammate", exact=True).select_option(
        label="Ada Lovelace (ada@example.com)"
    )
    dialog.get_by_label("Note for them (optional)").fill("For the platform engineer roles")
    dialog.get_by_role("button", name="Ask for approval").click()
    expect(page.get_by_role("status")).to_contain_text("is asked to approve")


def build(page: Page, server: str) -> Scene:
    """Build the scene on a fresh server; leaves `page` signed in as Ada (the admin)."""
    sign_up_and_link(page, server)
    link(page, BROKEN)
    link(page, BACK)
    token = create_token(page, server)
    with api(server, token) as client:
        mailboxes = {m["email"]: int(m["id"]) for m in _ok(client.get("/mailboxes"))}
        for mailbox in mailboxes.values():
            _ok(client.patch(f"/mailboxes/{mailbox}", json={"min_gap_seconds": GAP_SECONDS}))
        ada, broken, back = mailboxes[SENDER], mailboxes[BROKEN], mailboxes[BACK]

        sending = _campaign(client, SENDING, ada, 3)
        draft = _campaign(client, DRAFT, ada, 5)
        broken_campaign = _campaign(client, BROKEN_CAMPAIGN, broken, 2)
        back_campaign = _campaign(client, BACK_CAMPAIGN, back, 2)
        for campaign in (sending, broken_campaign, back_campaign):
            _ok(client.post(f"/campaigns/{campaign}/start"))
        sending_recipient = _sent_recipient(client, server, sending, SENDER)
        broken_recipient = _sent_recipient(client, server, broken_campaign, BROKEN)
        back_recipient = _sent_recipient(client, server, back_campaign, BACK)

        # broken@: the user withdraws access at the host; the health check notices.
        revoked = httpx.post(f"{server}/sandbox/admin/revoke", json={"mailbox": BROKEN})
        _ok(revoked)
        _wait_for_status(client, broken, "reauth_required")
        # back@: removed, then linked again: the same account, its campaign waiting for Resume.
        _ok(client.delete(f"/mailboxes/{back}"))
        link(page, BACK)
        _wait_for_status(client, back, "connected")

        endpoint = _ok(
            client.post(
                "/webhooks",
                json={
                    "url": "http://127.0.0.1:9/recruiting-dashboard/sendwell-events",
                    "events": ["campaign.paused", "mailbox.reauth_required"],
                    "description": "Recruiting dashboard",
                },
            )
        )
        invited = _ok(client.post("/users", json={"email": MEMBER}))
        invitation = _ok(client.post("/users", json={"email": "linus@example.com"}))
        member_context = page.context.browser.new_context()  # type: ignore[union-attr]
        try:
            _member_asks_for_adas_account(member_context.new_page(), invited["invite_url"])
        finally:
            member_context.close()
        member = next(int(u["id"]) for u in _ok(client.get("/users")) if u["email"] == MEMBER)
        delegation = int(_ok(client.get("/delegations"))[0]["id"])
        draft_recipient = int(_recipients(client, draft)[0]["id"])
    return Scene(
        server=server,
        token=token,
        ada_mailbox=ada,
        broken_mailbox=broken,
        back_mailbox=back,
        sending=sending,
        sending_recipient=sending_recipient,
        draft=draft,
        draft_recipient=draft_recipient,
        broken_campaign=broken_campaign,
        broken_recipient=broken_recipient,
        back_campaign=back_campaign,
        back_recipient=back_recipient,
        endpoint=int(endpoint["id"]),
        member=member,
        delegation=delegation,
        invitation_url=str(invitation["invite_url"]),
        unsubscribe_url=_unsubscribe_url(server),
        import_path=_pending_import(page, server, draft),
    )


def _pending_import(page: Page, server: str, campaign: int) -> str:
    """A CSV uploaded to the campaign and not imported yet: the path of its mapping page."""
    page.goto(f"{server}/campaigns/{campaign}")
    with tempfile.TemporaryDirectory() as folder:
        upload_csv(page, Path(folder), "email,first name,role\nmapped@example.com,Max,Recruiter\n")
    return page.url.removeprefix(server)
