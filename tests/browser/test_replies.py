"""The Replies tab as a recruiter meets it, in headless Chromium against a real server sending
through the sandbox's emulated Gmail: a recipient answers, the reply is listed with its
campaign, step and an "Open thread" link to Gmail, the recruiter marks it Interested, and the
campaign page counts one Interested reply."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServers
from tests.browser.test_campaigns import (
    FAST,
    SENDER,
    Step,
    create_campaign,
    import_recipients,
    sent_log,
    set_min_gap,
    sign_up_and_link,
    start_campaign,
    wait_for_sent,
)
from tests.browser.test_delivery_guards import expect_fits_a_phone

pytestmark = pytest.mark.browser

RECIPIENTS = ["zoe@example.com", "yan@example.com"]


def open_replies_tab(page: Page) -> None:
    page.get_by_role("link", name="Messaging", exact=True).click()
    tabs = page.get_by_role("navigation", name="Messaging")
    tabs.get_by_role("link", name="Replies").click()
    expect(tabs.get_by_role("link", name="Replies")).to_have_attribute("aria-current", "page")


def test_a_reply_is_listed_marked_interested_and_counted(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Backend engineers"
    sign_up_and_link(page, server)
    set_min_gap(page, SENDER, 0)
    create_campaign(
        page,
        name,
        [
            Step("Hello {{ first_name }}", "Hi {{ first_name }}, a role for you?"),
            Step("", "Any news?", 1, "days"),
        ],
    )
    import_recipients(page, tmp_path, RECIPIENTS)
    start_campaign(page, name)
    wait_for_sent(server, len(RECIPIENTS))
    zoe = next(message for message in sent_log(server) if message.to == RECIPIENTS[0])

    # Zoe answers in her own mailbox.
    response = httpx.post(
        f"{server}/sandbox/admin/reply",
        json={"mailbox": SENDER, "to_message_id": zoe.message_id},
    )
    assert response.status_code == 200, response.text

    open_replies_tab(page)
    replies = page.get_by_role("region", name="Replies", exact=True)
    for _ in range(60):
        if replies.get_by_role("row").filter(has_text=RECIPIENTS[0]).count():
            break
        page.wait_for_timeout(500)
        page.reload()
    row = replies.get_by_role("row").filter(has_text=RECIPIENTS[0])
    expect(row).to_contain_text(name)
    expect(row).to_contain_text("Step 1")
    expect(row).to_contain_text("Not marked")
    link = row.get_by_role("link", name="Open thread")
    expect(link).to_have_attribute(
        "href", re.compile(r"^https://mail\.google\.com/mail/\?authuser=ada@gmail\.test#all/.+")
    )
    expect(replies).not_to_contain_text(RECIPIENTS[1])

    row.get_by_role("button", name=f"Mark interested: {RECIPIENTS[0]}").click()
    expect(page.get_by_role("status")).to_have_text(f"{RECIPIENTS[0]} is marked Interested.")
    row = (
        page.get_by_role("region", name="Replies", exact=True)
        .get_by_role("row")
        .filter(has_text=RECIPIENTS[0])
    )
    expect(row).to_contain_text("Interested")

    # Only the interested ones, then the campaign's own count.
    page.get_by_label("Interest", exact=True).select_option("interested")
    page.get_by_role("button", name="Filter").click()
    expect(
        page.get_by_role("region", name="Replies", exact=True)
        .get_by_role("row")
        .filter(has_text=RECIPIENTS[0])
    ).to_be_visible()
    page.screenshot(path=str(tmp_path / "replies-tab.png"), full_page=True)
    expect_fits_a_phone(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    row.get_by_role("link", name=name).click()
    section = page.get_by_role("region", name="Replies", exact=True)
    expect(section.locator("[data-count=interested]")).to_have_text("1")
    expect(section.get_by_role("row").filter(has_text=RECIPIENTS[0])).to_contain_text("Interested")
    page.screenshot(path=str(tmp_path / "campaign.png"), full_page=True)
    expect_fits_a_phone(page)
