"""The cockpit's checks a recruiter meets on the way: a merge-field typo refused at Save with a
suggestion, recipients imported with their own time zones, and the Campaigns tab's search,
status filter and Restore of an archived campaign."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServers
from tests.browser.test_campaigns import (
    FAST,
    Step,
    campaign_row,
    choose_from_menu,
    create_campaign,
    import_csv,
    open_campaigns_tab,
    recipient_rows,
    sign_up_and_link,
)

pytestmark = pytest.mark.browser


def find_campaigns(page: Page, *, search: str = "", status: str = "All but archived") -> None:
    filters = page.get_by_role("search", name="Find campaigns")
    filters.get_by_label("Search by name").fill(search)
    filters.get_by_label("Status").select_option(label=status)
    filters.get_by_role("button", name="Show").click()


def test_a_typo_is_refused_with_a_suggestion_and_time_zones_and_archives_are_kept_in_view(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    sign_up_and_link(page, server)
    create_campaign(page, "Tokyo hello", [Step("Hello {{ first_name }}", "Hi from {{ company }}")])
    import_csv(
        page,
        tmp_path,
        "email,first name,company,time zone\nken@example.com,Ken,Sony,Asia/Tokyo\n",
        bom=False,
    )
    expect(page.get_by_role("status")).to_contain_text("Imported 1 recipient")
    rows = recipient_rows(page)
    expect(rows.nth(1)).to_contain_text("Asia/Tokyo time")

    # A typo in a merge field is refused at Save, with the field the recipients do have.
    page.get_by_role("link", name="Edit", exact=True).click()
    first = page.get_by_role("group", name="First email")
    first.get_by_label("Body").fill("Hi from {{ compnay }}")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("did you mean {{ company }}?")).to_be_visible()
    first.get_by_label("Body").fill("Hi from {{ company }}")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="Tokyo hello", exact=True)).to_be_visible()

    # Archived campaigns leave the default list; a search and the Archived filter find them,
    # and Restore brings one back as it was (a draft).
    create_campaign(page, "Old outreach", [Step("Old news", "Hello again")])
    open_campaigns_tab(page)
    choose_from_menu(page, "Old outreach", "Archive")
    expect(page.get_by_role("status")).to_have_text("“Old outreach” is archived.")
    open_campaigns_tab(page)
    expect(campaign_row(page, "Old outreach")).to_have_count(0)
    expect(campaign_row(page, "Tokyo hello")).to_have_count(1)

    find_campaigns(page, search="old", status="Archived")
    expect(campaign_row(page, "Old outreach")).to_have_count(1)
    expect(campaign_row(page, "Tokyo hello")).to_have_count(0)
    choose_from_menu(page, "Old outreach", "Restore")
    expect(page.get_by_role("status")).to_have_text("“Old outreach” is restored.")

    open_campaigns_tab(page)
    find_campaigns(page, search="outreach")
    row = campaign_row(page, "Old outreach")
    expect(row).to_have_count(1)
    expect(row.locator('[data-live="status"]')).to_contain_text("Draft")
    expect(campaign_row(page, "Tokyo hello")).to_have_count(0)
