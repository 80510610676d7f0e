"""The import in two steps in headless Chromium: upload, the mapping page (a `role` column
mapped to Title by hand, someone emailed by an earlier campaign skipped), then Import."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServers
from tests.browser.test_campaigns import (
    FAST,
    SENDER,
    Step,
    create_campaign,
    import_csv,
    recipient_rows,
    set_min_gap,
    sign_up_and_link,
    start_campaign,
    upload_csv,
    wait_for_sent,
)

pytestmark = pytest.mark.browser

PEOPLE = (
    "email,first name,company,role\n"
    "grace@example.com,Grace,Navy,Admiral\n"
    "alan@example.com,Alan,Bletchley Park,Cryptanalyst\n"
)


def test_upload_map_a_column_by_hand_and_skip_someone_already_emailed(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    sign_up_and_link(page, server)
    set_min_gap(page, SENDER, 0)

    # An earlier campaign emails Grace.
    create_campaign(page, "Winter outreach", [Step("Hello {{ first_name }}", "Hi there.")])
    import_csv(page, tmp_path, "email,first name\ngrace@example.com,Grace\n", bom=False)
    expect(page.get_by_role("status")).to_contain_text("Imported 1 recipient; skipped 0.")
    start_campaign(page, "Winter outreach")
    wait_for_sent(server, 1)

    create_campaign(
        page,
        "Spring outreach",
        [Step("Hello {{ first_name }}", "As a {{ title }} at {{ company }}…")],
    )
    upload_csv(page, tmp_path, PEOPLE, bom=False)

    # Each column with a sample value and what it becomes; "role" keeps its own name.
    role = page.get_by_role("combobox", name="role")
    expect(page.get_by_role("row").filter(has=role)).to_contain_text("Admiral")
    expect(role.locator("option:checked")).to_have_text("A merge field of its own: {{ role }}")
    expect(page.get_by_role("combobox", name="email")).to_have_value("email")
    role.select_option(label="Title")

    # Candidate memory: Grace was emailed by the earlier campaign.
    history = page.get_by_role("region", name="Already in touch elsewhere")
    grace = history.get_by_role("row").filter(has_text="grace@example.com")
    expect(grace).to_contain_text("contacted in “Winter outreach”")
    expect(history.get_by_label("replied")).to_be_checked()
    emailed = history.get_by_label("were emailed (without replying)")
    expect(emailed).not_to_be_checked()
    emailed.check()
    page.get_by_role("button", name="Import", exact=True).click()

    report = page.get_by_role("status")
    expect(report).to_contain_text("Imported 1 recipient; skipped 1.")
    expect(report).to_contain_text("Skipped: 1 contacted in another campaign.")
    expect(report.get_by_role("row").filter(has_text="grace@example.com")).to_contain_text(
        "contacted in another campaign (“Winter outreach”)"
    )
    expect(report).to_contain_text("role → title")
    rows = recipient_rows(page)
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("alan@example.com")

    # The mapped column fills {{ title }}: nothing says it has no value.
    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_contain_text("As a Cryptanalyst at Bletchley Park…")
    expect(preview).not_to_contain_text("has no value")

    # The activity log gives the same numbers as the summary.
    activity = page.get_by_role("region", name="Activity")
    expect(activity).to_contain_text(
        "Added 1 recipient; skipped 1 (1 contacted in another campaign)."
    )
