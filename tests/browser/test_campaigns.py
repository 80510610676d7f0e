"""A campaign from the editor to sending and back: two steps, a CSV import, the preview, Start,
and Pause and Resume from the Campaigns tab's three-dots menu, in headless Chromium against a
real server whose sending engine sends through the sandbox's emulated Gmail."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import LiveServers
from tests.browser.test_mailboxes import (
    account_row,
    allow_all_permissions,
    create_first_account,
    link_account,
    open_settings_tab,
)

pytestmark = pytest.mark.browser

SENDER = "ada@gmail.test"
# Fast background work: a health check every 3 s, replies read every second (every 2 s once
# an inbox is quiet), and a send whose outcome is unknown looked for in Sent after a second.
FAST = {
    "SENDWELL_HEALTH_CHECK_MINUTES": "0.05",
    "SENDWELL_INBOUND_POLL_SECONDS": "1",
    "SENDWELL_INBOUND_QUIET_POLL_SECONDS": "2",
    "SENDWELL_SETTLE_GRACE_SECONDS": "1",
}


@dataclass(frozen=True)
class Step:
    subject: str
    body: str
    delay: int = 0
    unit: str = "minutes"


@dataclass(frozen=True)
class Sent:
    """One message in the sandbox mailbox's Sent folder."""

    to: str
    subject: str
    message_id: str
    at: datetime


# --- the sandbox, as the mail host sees it ---------------------------------------------------


def sent_log(server: str, mailbox: str = SENDER) -> list[Sent]:
    """What the mailbox has sent, oldest first (GET /sandbox/admin/messages)."""
    response = httpx.get(f"{server}/sandbox/admin/messages", params={"mailbox": mailbox})
    assert response.status_code == 200, response.text
    return [
        Sent(
            to=parseaddr(row["to"][0])[1].lower(),
            subject=row["subject"],
            message_id=row["headers"].get("Message-ID", ""),
            at=datetime.fromisoformat(row["sent_at"]),
        )
        for row in response.json()
    ]


def wait_for_sent(
    server: str, count: int, *, mailbox: str = SENDER, timeout: float = 30
) -> list[Sent]:
    """Poll the Sent folder until it holds at least `count` messages."""
    deadline = time.monotonic() + timeout
    while True:
        log = sent_log(server, mailbox)
        if len(log) >= count:
            return log
        assert time.monotonic() < deadline, f"only {len(log)} of {count} sent: {log}"
        time.sleep(0.1)


def revoke(server: str, mailbox: str = SENDER) -> None:
    """The user withdraws Sendwell's access at the mail host."""
    response = httpx.post(f"{server}/sandbox/admin/revoke", json={"mailbox": mailbox})
    assert response.status_code == 200, response.text
    assert response.json()["revoked"]


def sent_pairs(log: list[Sent]) -> Counter[tuple[str, str]]:
    """How often each (recipient, subject) went out; subjects tell the steps apart."""
    return Counter((message.to, message.subject) for message in log)


# --- the UI ------------------------------------------------------------------------------------


def sign_up_and_link(page: Page, server: str, email: str = SENDER) -> None:
    """The first account, then the email account linked through the pop-up."""
    create_first_account(page, server)
    open_settings_tab(page)
    link_account(page, email)
    allow_all_permissions(page)
    expect(page.get_by_role("status")).to_have_text(f"{email} is connected.")


def set_min_gap(page: Page, email: str, seconds: int) -> None:
    """Email Settings → "Minimum gap between emails (seconds)" → Save."""
    open_settings_tab(page)
    account_row(page, email).get_by_role("link", name="Email Settings").click()
    expect(page.get_by_role("heading", name="Email Settings")).to_be_visible()
    page.get_by_label("Minimum gap between emails (seconds)").fill(str(seconds))
    page.get_by_role("button", name="Save", exact=True).click()
    if seconds < 60:
        # A gap under the guidance is kept only once its risk is acknowledged.
        expect(page.get_by_role("alert")).to_contain_text("sends in bursts")
        page.get_by_label("I understand the risk of a short gap").check()
        page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Email settings saved.")
    expect(page.get_by_label("Minimum gap between emails (seconds)")).to_have_value(str(seconds))


def open_campaigns_tab(page: Page) -> None:
    page.get_by_role("link", name="Messaging", exact=True).click()
    tabs = page.get_by_role("navigation", name="Messaging")
    tabs.get_by_role("link", name="Campaigns").click()
    expect(tabs.get_by_role("link", name="Campaigns")).to_have_attribute("aria-current", "page")


def create_campaign(page: Page, name: str, steps: list[Step]) -> None:
    """Campaigns tab → "New campaign" → name, steps ("Add follow-up"), start delay 0 → "Save
    draft"; leaves the browser on the new campaign's page."""
    open_campaigns_tab(page)
    page.get_by_role("link", name="New campaign").first.click()
    expect(page.get_by_role("heading", name="New campaign")).to_be_visible()
    page.get_by_label("Campaign name").fill(name)
    for index, step in enumerate(steps):
        if index:
            page.get_by_role("button", name="Add follow-up").click()
        group = page.get_by_role("group", name="First email" if not index else f"Follow-up {index}")
        expect(group).to_be_visible()
        if index:
            group.get_by_label("Send", exact=True).fill(str(step.delay))
            group.get_by_label("Unit").select_option(step.unit)
        group.get_by_label("Subject").fill(step.subject)
        group.get_by_label("Body").fill(step.body)
    # New campaigns send on weekdays; these tests send whatever day they run on.
    page.get_by_label("Sat", exact=True).check()
    page.get_by_label("Sun", exact=True).check()
    page.get_by_label("Start delay (minutes)").fill("0")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(
        f"“{name}” is saved as a draft. Add recipients, preview, then start it."
    )


def import_csv(page: Page, folder: Path, content: str, *, bom: bool = True) -> None:
    """The campaign page's "CSV file" → "Upload", then the mapping page's "Import" as proposed,
    with a file written like a spreadsheet's."""
    upload_csv(page, folder, content, bom=bom)
    page.get_by_role("button", name="Import", exact=True).click()


def upload_csv(page: Page, folder: Path, content: str, *, bom: bool = True) -> None:
    """The campaign page's "CSV file" → "Upload": the mapping page opens."""
    path = folder / "recipients.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + content.encode("utf-8"))
    page.get_by_label("CSV file").set_input_files(path)
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("heading", name="Map the columns of recipients.csv")).to_be_visible()


def import_recipients(page: Page, folder: Path, emails: list[str]) -> None:
    """A plain CSV of addresses and first names, every row imported."""
    rows = "".join(f"{email},{email.split('@')[0].title()}\n" for email in emails)
    import_csv(page, folder, "email,first name\n" + rows, bom=False)
    expect(page.get_by_role("status")).to_contain_text(
        f"Imported {len(emails)} recipients; skipped 0."
    )


def start_campaign(page: Page, name: str) -> None:
    """The campaign page's "Start", then its confirmation."""
    page.get_by_role("button", name="Start", exact=True).click()
    confirm_start(page)
    expect(page.get_by_role("status")).to_have_text(
        f"“{name}” is active. First emails go out after the start delay."
    )


def recipient_rows(page: Page) -> Locator:
    """The campaign page's table of recipients (not the import report's table), header first."""
    table = page.get_by_role("region", name="Recipients").get_by_role("table")
    return table.filter(has=page.get_by_role("columnheader", name="Steps sent")).get_by_role("row")


def campaign_row(page: Page, name: str) -> Locator:
    """The campaign's row on the Campaigns tab."""
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))


def expect_row_status(page: Page, name: str, status: str, reason: str | None = None) -> None:
    """The row's Status cell: the status, and the pause reason under it (none if `None`)."""
    cell = campaign_row(page, name).get_by_role("cell").nth(1)
    expect(cell.get_by_text(status, exact=True)).to_be_visible()
    if reason is None:
        expect(cell).to_have_text(status)
    else:
        expect(cell.get_by_text(reason, exact=True)).to_be_visible()


def choose_from_menu(page: Page, name: str, action: str) -> None:
    """ "Click the three-dots on the far right of the campaign name and choose" the action."""
    button = page.get_by_role("button", name=f"Actions for {name}")
    button.click()
    expect(button).to_have_attribute("aria-expanded", "true")
    menu = campaign_row(page, name).get_by_role("menu")
    expect(menu).to_be_visible()
    menu.get_by_role("menuitem", name=action, exact=True).click()


def confirm_start(page: Page) -> None:
    """Start shows who gets the first email, when and from where; "Start sending" confirms."""
    expect(page.get_by_role("heading", level=1)).to_contain_text("Start")
    expect(page.get_by_text("Recipients who get the first email")).to_be_visible()
    page.get_by_role("button", name="Start sending", exact=True).click()


def confirm_resume(page: Page, label: str = "Resume") -> None:
    """Resume shows what it will do before it does it: the preview's own button confirms."""
    expect(page.get_by_role("heading", level=1)).to_contain_text("Resume")
    expect(page.get_by_text("Arrived during the pause").first).to_be_visible()
    page.get_by_role("button", name=label, exact=True).click()


# --- the test ----------------------------------------------------------------------------------

RECIPIENTS_CSV = (
    "Email;First Name;Company;Favourite Color\n"
    "grace@example.com;Grace;Navy;blue\n"
    "alan@example.com;Alan;Bletchley Park;green\n"
    "GRACE@Example.com;Grace again;Navy;red\n"
    "not-an-address;Nobody;Nowhere;grey\n"
    "katherine@example.com;Katherine;NASA;\n"
)
IMPORTED = ["grace@example.com", "alan@example.com", "katherine@example.com"]


def test_campaign_from_draft_to_sending_then_pause_and_resume_from_the_menu(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Spring outreach"
    sign_up_and_link(page, server)
    set_min_gap(page, SENDER, 0)

    create_campaign(
        page,
        name,
        [
            Step(
                "Hello {{ first_name }} at {{ company }}",
                "Hi {{ first_name | default('there') }},\n"
                "your favourite colour is {{ favourite_color | default('a secret') }}.\n",
            ),
            Step("", "Any news from {{ company }}?", 1, "days"),
        ],
    )
    steps = page.get_by_role("region", name="Steps").get_by_role("listitem")
    expect(steps).to_have_count(2)
    expect(steps.nth(1)).to_contain_text("1 day after step 1, as a reply in the same thread")

    # A spreadsheet's export: a byte-order mark, semicolons, a duplicate and an invalid row.
    import_csv(page, tmp_path, RECIPIENTS_CSV)
    report = page.get_by_role("status")
    expect(report).to_contain_text("Imported 3 recipients; skipped 2.")
    skipped = report.get_by_role("table").get_by_role("row")
    expect(skipped).to_have_count(3)  # the header and two rows
    expect(skipped.nth(1)).to_contain_text("4")
    expect(skipped.nth(1)).to_contain_text("grace@example.com")
    expect(skipped.nth(1)).to_contain_text("duplicate in this list")
    expect(skipped.nth(2)).to_contain_text("5")
    expect(skipped.nth(2)).to_contain_text("not-an-address")
    expect(skipped.nth(2)).to_contain_text("invalid address")
    expect(report).to_contain_text("Favourite Color → favourite_color")
    recipients = recipient_rows(page)
    expect(recipients).to_have_count(1 + len(IMPORTED))
    for email in IMPORTED:
        expect(recipients.filter(has_text=email)).to_contain_text("Not Started")

    # The preview fills the merge fields for the chosen recipient and step.
    preview = page.get_by_role("region", name="Preview")
    preview.get_by_label("Recipient").select_option(label="alan@example.com")
    preview.get_by_role("button", name="Preview").click()
    expect(preview).to_contain_text("To: alan@example.com")
    expect(preview).to_contain_text("Subject: Hello Alan at Bletchley Park")
    expect(preview).to_contain_text("Hi Alan,\nyour favourite colour is green.")
    preview.get_by_label("Step").select_option(label="Step 2")
    preview.get_by_label("Recipient").select_option(label="katherine@example.com")
    preview.get_by_role("button", name="Preview").click()
    expect(preview).to_contain_text("Subject: Re: Hello Katherine at NASA")
    expect(preview).to_contain_text("Any news from NASA?")
    preview.get_by_label("Step").select_option(label="Step 1")
    preview.get_by_role("button", name="Preview").click()
    expect(preview).to_contain_text("your favourite colour is a secret.")
    assert sent_log(server) == []

    start_campaign(page, name)
    # Step 1 goes to every imported recipient, exactly once; step 2 waits a day.
    first_subjects = {
        "grace@example.com": "Hello Grace at Navy",
        "alan@example.com": "Hello Alan at Bletchley Park",
        "katherine@example.com": "Hello Katherine at NASA",
    }
    wait_for_sent(server, len(IMPORTED))

    open_campaigns_tab(page)
    expect_row_status(page, name, "Active")
    row = campaign_row(page, name)

    # The three-dots menu from the keyboard: ArrowDown opens it on its first item, Escape
    # closes it and gives the focus back to the button.
    button = row.get_by_role("button", name=f"Actions for {name}")
    menu = row.get_by_role("menu")
    expect(menu).to_be_hidden()
    button.focus()
    page.keyboard.press("ArrowDown")
    expect(menu).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    items = menu.get_by_role("menuitem")
    expect(items).to_have_text(["Pause", "Duplicate", "Open"])
    expect(items.first).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(items.nth(1)).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()

    choose_from_menu(page, name, "Pause")
    expect(page.get_by_role("status")).to_have_text(
        f"“{name}” is paused. Nothing more is sent until you resume it."
    )
    expect_row_status(page, name, "Paused", "Paused by you.")
    # Pausing waits for sends in flight, so the counts are final here.
    expect(row).to_contain_text("0 / 3 finished · 3 sent")
    row.get_by_role("button", name=f"Actions for {name}").click()
    expect(row.get_by_role("menuitem")).to_have_text(["Resume", "Duplicate", "Archive", "Open"])
    page.keyboard.press("Escape")

    choose_from_menu(page, name, "Resume")
    confirm_resume(page)
    expect(page.get_by_role("status")).to_have_text(
        f"“{name}” is active again and resumes from where it left off."
    )
    expect_row_status(page, name, "Active")

    # Resuming sends nothing twice: the first step went out once to each, and nothing else.
    time.sleep(1.5)
    assert sent_pairs(sent_log(server)) == Counter(
        (email, subject) for email, subject in first_subjects.items()
    )
    row.get_by_role("link", name=name, exact=True).click()
    recipients = recipient_rows(page)
    for email in IMPORTED:
        expect(recipients.filter(has_text=email)).to_contain_text("In Progress · step 1")
        expect(recipients.filter(has_text=email)).to_contain_text("1 / 2")
