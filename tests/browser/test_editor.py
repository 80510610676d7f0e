"""Before a campaign sends: safer defaults in the editor and Email Settings, a snippet inserted
at the cursor, a step previewed as sent, a test sent to oneself, and Start confirmed — also at
390 px, where nothing may overflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServers
from tests.browser.test_campaigns import (
    FAST,
    SENDER,
    import_recipients,
    open_campaigns_tab,
    recipient_rows,
    set_min_gap,
    sign_up_and_link,
    wait_for_sent,
)
from tests.browser.test_delivery_guards import back_to_desktop, expect_fits_a_phone
from tests.browser.test_mailboxes import account_row, open_settings_tab

pytestmark = pytest.mark.browser

ZONE = "Pacific/Auckland"


def same_line(page: Page, *boxes: object) -> None:
    tops = [box["y"] + box["height"] / 2 for box in boxes]  # type: ignore[index]
    assert max(tops) - min(tops) < 8, f"not on one line: {tops}"


def test_from_the_editor_to_a_confirmed_start(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    first = browser_page
    sign_up_and_link(first, server)
    # A browser in Auckland: the editor takes its time zone.
    context = first.context.browser.new_context(timezone_id=ZONE)  # type: ignore[union-attr]
    context.add_cookies(first.context.cookies())  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(server + "/messaging/settings")

    # Email Settings: the limit's reason, and a short gap kept only once confirmed.
    account_row(page, SENDER).get_by_role("link", name="Email Settings").click()
    expect(page.get_by_text("At most 2,000 for a Google Workspace account.")).to_be_visible()
    # The field itself stops at the cap (the server refuses more: tests/mailboxes/test_limits.py).
    expect(page.get_by_label("Daily limit (emails per 24 hours)")).to_have_attribute("max", "2000")
    page.get_by_label("Daily limit (emails per 24 hours)").fill("500")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Email settings saved.")
    set_min_gap(page, SENDER, 0)

    # A snippet for the workspace.
    page.goto(server + "/snippets")
    page.get_by_label("Name", exact=True).fill("Sign-off")
    page.get_by_label("Text", exact=True).fill("Talk soon,\n{{ sender_name | default('Ada') }}")
    page.get_by_role("button", name="Save snippet").click()
    expect(page.get_by_role("status")).to_have_text("Snippet “Sign-off” saved.")
    expect_fits_a_phone(page)
    back_to_desktop(page)

    # The editor: weekdays ticked, the browser's time zone, a follow-up row on one line.
    open_campaigns_tab(page)
    page.get_by_role("link", name="New campaign").first.click()
    expect(page.get_by_label("Time zone")).to_have_value(ZONE)
    for day in ("Mon", "Tue", "Wed", "Thu", "Fri"):
        expect(page.get_by_label(day, exact=True)).to_be_checked()
    for day in ("Sat", "Sun"):
        expect(page.get_by_label(day, exact=True)).not_to_be_checked()
        page.get_by_label(day, exact=True).check()  # this test sends whatever day it runs
    page.get_by_label("Campaign name").fill("Kiwi outreach")
    first_email = page.get_by_role("group", name="First email")
    first_email.get_by_label("Subject").fill("Hello {{ first_name }}")
    body = first_email.get_by_label("Body")
    body.fill("Hi {{ first_name }},\n\nA role for you.\n\n")
    body.press("End")
    page.get_by_label("Snippet", exact=True).select_option(label="Sign-off")
    page.get_by_role("button", name="Insert snippet").click()
    expect(body).to_have_value(
        "Hi {{ first_name }},\n\nA role for you.\n\nTalk soon,\n{{ sender_name | default('Ada') }}"
    )
    expect(page.get_by_text("Inserted “Sign-off” in First email body.")).to_be_visible()
    page.get_by_role("button", name="Add follow-up").click()
    follow_up = page.get_by_role("group", name="Follow-up 1")
    follow_up.get_by_label("Body").fill("Any news, {{ first_name }}?")
    timing = [
        follow_up.get_by_label("Send", exact=True).bounding_box(),
        follow_up.get_by_label("Unit").bounding_box(),
        follow_up.get_by_text("after the previous step went out").bounding_box(),
    ]
    same_line(page, *timing)
    expect_fits_a_phone(page)
    same_line(
        page,
        follow_up.get_by_label("Send", exact=True).bounding_box(),
        follow_up.get_by_label("Unit").bounding_box(),
    )
    back_to_desktop(page)
    page.get_by_label("Start delay (minutes)").fill("0")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("“Kiwi outreach” is saved as a draft.")
    import_recipients(page, tmp_path, ["grace@example.com", "alan@example.com"])
    expect(recipient_rows(page)).to_have_count(3)

    # The step as Grace receives it, then a test of it to oneself.
    page.get_by_role("link", name="Preview as sent and send a test").click()
    page.get_by_label("Step", exact=True).select_option(label="Follow-up 1")
    page.get_by_label("Recipient", exact=True).select_option(label="grace@example.com")
    page.get_by_role("button", name="Show").click()
    shown = page.get_by_role("region", name="As grace@example.com receives it")
    expect(shown).to_contain_text("Re: Hello Grace")
    expect(shown).to_contain_text("List-Unsubscribe")
    expect(shown).to_contain_text("Any news, Grace?")
    expect_fits_a_phone(page)
    back_to_desktop(page)
    page.get_by_role("button", name="Send a test to me").click()
    expect(page.get_by_role("status")).to_contain_text(
        "A test of step 2 (as grace@example.com receives it) was sent to ada@example.com"
    )
    (test,) = wait_for_sent(server, 1)
    assert (test.to, test.subject) == ("ada@example.com", "[Test] Re: Hello Grace")

    # Start, confirmed: one recipient, the first send time in Auckland, the account.
    page.get_by_role("link", name="Back to the campaign").click()
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Start “Kiwi outreach”")
    facts = page.get_by_role("definition")
    expect(facts.nth(0)).to_have_text("2")
    expect(facts.nth(1)).to_contain_text(f"({ZONE})")
    expect(facts.nth(2)).to_have_text(SENDER)
    expect_fits_a_phone(page)
    back_to_desktop(page)
    page.get_by_role("button", name="Start sending").click()
    expect(page.get_by_role("status")).to_have_text(
        "“Kiwi outreach” is active. First emails go out after the start delay."
    )
    log = wait_for_sent(server, 3)
    assert sorted((m.to, m.subject) for m in log) == [
        ("ada@example.com", "[Test] Re: Hello Grace"),
        ("alan@example.com", "Hello Alan"),
        ("grace@example.com", "Hello Grace"),
    ]
    context.close()
    open_settings_tab(first)
