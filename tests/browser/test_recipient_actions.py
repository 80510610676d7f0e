"""The campaign page's recipients table in headless Chromium: search and filters kept in the
address, two recipients chosen and paused together, then one moved to another campaign."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServers
from tests.browser.test_campaigns import (
    FAST,
    Step,
    create_campaign,
    import_recipients,
    open_campaigns_tab,
    recipient_rows,
    sign_up_and_link,
)
from tests.browser.test_delivery_guards import back_to_desktop, expect_fits_a_phone

pytestmark = pytest.mark.browser

PEOPLE = ["grace@example.com", "alan@example.com", "katherine@nasa.example.org"]


def test_search_filter_pause_two_then_move_one(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    sign_up_and_link(page, server)
    create_campaign(page, "Autumn outreach", [Step("Hello {{ first_name }}", "Hi")])
    create_campaign(page, "Spring outreach", [Step("Hello {{ first_name }}", "Hi")])
    import_recipients(page, tmp_path, PEOPLE)
    rows = recipient_rows(page)
    expect(rows).to_have_count(1 + len(PEOPLE))

    # Search by name, then filter by domain: each keeps its choice in the address.
    page.get_by_label("Search").fill("katherine")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("katherine@nasa.example.org")
    page.get_by_label("Search").fill("")
    page.get_by_label("Domain").fill("example.com")
    page.get_by_label("Sort").select_option(label="Email, A to Z")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"domain=example\.com"))
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("alan@example.com")
    expect(rows.nth(2)).to_contain_text("grace@example.com")

    # Both chosen, paused together; the table comes back with the same filter.
    page.get_by_label("Choose alan@example.com").check()
    page.get_by_label("Choose grace@example.com").check()
    page.get_by_role("button", name="Pause chosen recipients").click()
    expect(page.get_by_role("status")).to_have_text("Paused 2 recipients.")
    expect(rows).to_have_count(3)
    expect(page.get_by_label("Domain")).to_have_value("example.com")
    for email in ("alan@example.com", "grace@example.com"):
        expect(rows.filter(has_text=email)).to_contain_text("Paused")
    page.get_by_label("Status").select_option(label="Paused")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(3)
    # The filters, the action bar and the table fit a phone (the table scrolls in its box).
    expect_fits_a_phone(page)
    back_to_desktop(page)

    # Grace moves to the other campaign of the same owner; she starts there from step 1.
    page.get_by_label("Choose grace@example.com").check()
    page.get_by_label("Campaign to move them to").select_option(label="Autumn outreach")
    page.get_by_role("button", name="Move to…").click()
    expect(page.get_by_role("status")).to_have_text("Moved 1 recipient to “Autumn outreach”.")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("alan@example.com")

    open_campaigns_tab(page)
    page.get_by_role("link", name="Autumn outreach", exact=True).click()
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("grace@example.com")
    expect(rows.nth(1)).to_contain_text("Not Started")

    # Her page in the first campaign says where she went and offers nothing more.
    open_campaigns_tab(page)
    page.get_by_role("link", name="Spring outreach", exact=True).click()
    page.get_by_label("Status").select_option(label="Moved")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="grace@example.com").click()
    expect(page.get_by_role("main")).to_contain_text("Moved to “Autumn outreach”")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    expect_fits_a_phone(page)
