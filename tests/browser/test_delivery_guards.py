"""Resume with foresight and the guards that pause before damage, as a user meets them in
headless Chromium against a real server sending through the sandbox's emulated Gmail: the
editor's "After a pause" and "Bounce protection" fields, the Resume preview's "Skip steps
overdue by more than N days", the Domain health section of Email Settings, and a campaign the
bounce-rate guard paused — each also on a 390 px wide phone, where nothing may overflow."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from dnslib import MX, TXT
from playwright.sync_api import Locator, Page, ViewportSize, expect
from sqlalchemy import select

from sendwell.db import make_engine, make_session_factory, session_scope
from sendwell.kit.clock import utcnow
from sendwell.models import Enrollment
from tests.browser.conftest import LiveServers
from tests.browser.test_campaigns import (
    FAST,
    SENDER,
    Step,
    campaign_row,
    choose_from_menu,
    create_campaign,
    expect_row_status,
    import_recipients,
    open_campaigns_tab,
    recipient_rows,
    sent_log,
    set_min_gap,
    sign_up_and_link,
    start_campaign,
    wait_for_sent,
)
from tests.browser.test_mailboxes import account_row, open_settings_tab
from tests.dns_support import Zone, serving_zone

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
GAP = 3  # seconds between two sends of the account
SKIP_CHOICE = re.compile(r"^Skip steps overdue by more than")
BOUNCE_RATE = (
    "Paused because too many recent emails bounced. Check the bounced recipients and the list "
    "they came from, then resume."
)
WORKSPACE = "acme.gmail.test"
KEY = "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1"


@pytest.fixture
def zone() -> Iterator[tuple[Zone, int]]:
    with serving_zone() as served:
        yield served


def expect_fits_a_phone(page: Page) -> None:
    """At 390 px nothing is wider than the screen: no sideways scrolling."""
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    # What sticks out, to say where the overflow comes from when there is one.
    wide = page.evaluate(
        """limit => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > limit)
            .slice(0, 5)
            .map(e => `${e.tagName.toLowerCase()}.${e.className}: `
                + e.textContent.trim().slice(0, 60))""",
        PHONE["width"],
    )
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a phone: {wide}"


def back_to_desktop(page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 720})


# --- (a) the editor's "After a pause" and "Bounce protection" ----------------------------------


def guard_fields(page: Page) -> dict[str, Locator]:
    return {
        "skip_days": page.get_by_label("Skip days", exact=True),
        "percent": page.get_by_label("Pause when bounces reach (%)"),
        "window": page.get_by_label("Of the latest (emails)"),
        "hold": page.get_by_label("Hold after an automatic reply (days)"),
    }


def expect_saved_choices(page: Page, choice: str | re.Pattern[str], values: dict[str, str]) -> None:
    expect(page.get_by_role("radio", name=choice)).to_be_checked()
    fields = guard_fields(page)
    for key, value in values.items():
        expect(fields[key]).to_have_value(value)


def test_the_editor_saves_the_catch_up_choice_and_the_guards_and_keeps_a_bad_value(
    live_servers: LiveServers, browser_page: Page
) -> None:
    server = live_servers.start()
    page = browser_page
    name = "Guarded outreach"
    sign_up_and_link(page, server)

    # A new campaign starts with the workspace's defaults.
    open_campaigns_tab(page)
    page.get_by_role("link", name="New campaign").first.click()
    after_pause = page.get_by_role("group", name=re.compile("^After a pause"))
    expect(after_pause.get_by_role("radio", name="Catch up at the normal pace")).to_be_checked()
    expect_saved_choices(
        page,
        "Catch up at the normal pace",
        {"skip_days": "7", "percent": "2", "window": "50", "hold": "3"},
    )
    page.get_by_label("Campaign name").fill(name)
    first = page.get_by_role("group", name="First email")
    first.get_by_label("Subject").fill("Hello {{ first_name }}")
    first.get_by_label("Body").fill("Hi {{ first_name }}.")
    after_pause.get_by_role("radio", name=SKIP_CHOICE).check()
    fields = guard_fields(page)
    fields["skip_days"].fill("10")
    fields["percent"].fill("5")
    fields["window"].fill("20")
    fields["hold"].fill("2")
    # New campaigns send on weekdays; this test sends whatever day it runs on.
    page.get_by_label("Sat", exact=True).check()
    page.get_by_label("Sun", exact=True).check()
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text(f"“{name}” is saved as a draft.")

    # The campaign page says what was chosen, and the editor shows it again.
    steps = page.get_by_role("region", name="Steps", exact=True)
    expect(steps).to_contain_text(
        "Bounce protection: pauses itself when 5 % of its latest 20 emails bounced."
    )
    expect(steps).to_contain_text(
        "A recipient who sends an automatic reply gets no email for 2 days."
    )
    expect(steps).to_contain_text(
        "After a pause: Skip steps overdue by more than 10 days (you can choose again at each "
        "Resume)."
    )
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_role("heading", name="Edit campaign")).to_be_visible()
    expect_saved_choices(
        page, SKIP_CHOICE, {"skip_days": "10", "percent": "5", "window": "20", "hold": "2"}
    )

    # A rate that is not a number: said clearly, and everything typed is still there.
    page.get_by_label("Campaign name").fill(f"{name} (renamed)")
    page.get_by_role(
        "radio", name="Shift every pending step later by the length of the pause"
    ).check()
    fields = guard_fields(page)
    fields["percent"].fill("two")
    fields["window"].fill("40")
    fields["hold"].fill("0")
    page.get_by_role("button", name="Save changes").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(
        "The bounce rate that pauses the campaign must be a number, such as 2 or 2.5."
    )
    expect(page.get_by_label("Campaign name")).to_have_value(f"{name} (renamed)")
    expect_saved_choices(
        page,
        "Shift every pending step later by the length of the pause",
        {"skip_days": "10", "percent": "two", "window": "40", "hold": "0"},
    )
    expect_fits_a_phone(page)
    back_to_desktop(page)

    guard_fields(page)["percent"].fill("150")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert")).to_have_text(
        "The bounce rate that pauses the campaign must be more than 0 % and at most 100 %."
    )
    expect(guard_fields(page)["percent"]).to_have_value("150")

    # A hold beyond 60 days is refused by the browser itself: nothing is sent (the server
    # would have answered with its own words), nothing is lost.
    guard_fields(page)["percent"].fill("2,5")
    guard_fields(page)["hold"].fill("61")
    page.get_by_role("button", name="Save changes").click()
    hold = guard_fields(page)["hold"]
    assert hold.evaluate("field => field.validity.rangeOverflow")
    assert hold.evaluate("field => field.validationMessage")
    page.wait_for_load_state()
    expect(page.get_by_role("alert")).to_contain_text("at most 100 %")
    expect(guard_fields(page)["percent"]).to_have_value("2,5")

    # Fixed (a decimal comma is fine): saved, and shown again as saved.
    guard_fields(page)["hold"].fill("0")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Changes saved.")
    expect(page.get_by_role("heading", name=f"{name} (renamed)", exact=True)).to_be_visible()
    steps = page.get_by_role("region", name="Steps", exact=True)
    expect(steps).to_contain_text("pauses itself when 2.5 % of its latest 40 emails bounced.")
    expect(steps).to_contain_text("Automatic replies hold no one.")
    expect(steps).to_contain_text(
        "After a pause: Shift every pending step later by the length of the pause"
    )
    page.get_by_role("link", name="Edit", exact=True).click()
    expect_saved_choices(
        page,
        "Shift every pending step later by the length of the pause",
        {"skip_days": "10", "percent": "2.5", "window": "40", "hold": "0"},
    )
    expect_fits_a_phone(page)


# --- (b) the Resume preview's "Skip steps overdue by more than N days" ------------------------

THREE_STEPS = [
    Step("Hello {{ first_name }}", "Hi {{ first_name }}, shall we talk?"),
    Step("", "A second thought, {{ first_name }}.", 1, "days"),
    Step("", "A last word, {{ first_name }}.", 5, "days"),
]


def overdue_by(server_db: str, days: dict[str, float]) -> None:
    """Each recipient's next step fell due that many days ago (as after a long pause)."""
    engine = make_engine(server_db)
    try:
        with session_scope(make_session_factory(engine)) as db:
            now = utcnow()
            for enrollment in db.scalars(select(Enrollment).where(Enrollment.email.in_(days))):
                enrollment.next_due_at = now - timedelta(days=days[enrollment.email])
    finally:
        engine.dispose()


def test_resume_skipping_steps_overdue_by_more_than_seven_days(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Long pause"
    grace, alan = "grace@example.com", "alan@example.com"
    sign_up_and_link(page, server)
    set_min_gap(page, SENDER, 0)
    create_campaign(page, name, THREE_STEPS)
    import_recipients(page, tmp_path, [grace, alan])
    start_campaign(page, name)
    wait_for_sent(server, 2)
    open_campaigns_tab(page)
    choose_from_menu(page, name, "Pause")
    expect_row_status(page, name, "Paused", "Paused by you.")

    # Time passes: Grace's second step is 10 days overdue, Alan's 2 days.
    overdue_by(live_servers.database_url(server), {grace: 10, alan: 2})

    choose_from_menu(page, name, "Resume")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Resume “{name}”")
    expect(page.get_by_role("radio", name="Catch up at the normal pace")).to_be_checked()
    plan = page.get_by_role("region", name=name, exact=True)
    expect(plan).to_contain_text("2 steps (step 2: 2)")

    page.get_by_role("radio", name=SKIP_CHOICE).check()
    page.get_by_label("Skip days", exact=True).fill("7")
    page.get_by_role("button", name="Show what this does").click()
    expect(page.get_by_role("radio", name=SKIP_CHOICE)).to_be_checked()
    expect(page.get_by_label("Skip days", exact=True)).to_have_value("7")
    plan = page.get_by_role("region", name=name, exact=True)
    expect(plan).to_contain_text("Skip steps overdue by more than 7 days.")
    expect(plan).to_contain_text("1 step for 1 recipient, overdue by more than 7 days")
    expect(plan).to_contain_text("2 steps (step 2: 1, step 3: 1)")
    order = plan.get_by_role("table").get_by_role("row")
    expect(order).to_have_count(3)  # the header, then the send order
    expect(order.nth(1)).to_contain_text(grace)
    expect(order.nth(1)).to_contain_text("Step 3")
    expect(order.nth(2)).to_contain_text(alan)
    expect(order.nth(2)).to_contain_text("Step 2")
    plan.get_by_text("Skipped steps", exact=True).click()
    skipped = plan.get_by_role("listitem").filter(has_text=grace)
    expect(skipped).to_contain_text(f"{grace}: step 2 — moves to step 3, due")
    expect_fits_a_phone(page)
    back_to_desktop(page)

    page.get_by_role("button", name="Resume", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        f"“{name}” is active again and resumes from where it left off."
    )
    expect_row_status(page, name, "Active")

    # Grace gets her third step and never the second; Alan his second.
    wait_for_sent(server, 4)
    time.sleep(1.5)
    assert Counter(message.to for message in sent_log(server)) == {grace: 2, alan: 2}
    campaign_row(page, name).get_by_role("link", name=name, exact=True).click()
    recipient_rows(page).filter(has_text=grace).get_by_role("link", name=grace).click()
    expect(page.get_by_role("heading", name=grace)).to_be_visible()
    sequence = page.get_by_role("region", name="Sequence").get_by_role("row")
    expect(sequence.nth(1)).to_contain_text("Sent")
    expect(sequence.nth(2)).to_contain_text("Skipped")
    expect(sequence.nth(2)).to_contain_text(
        re.compile(
            r"Skipped when the campaign resumed on \d{4}-\d\d-\d\d \d\d:\d\d UTC: overdue by "
            r"10 days, more than 7 days\."
        )
    )
    expect(sequence.nth(3)).to_contain_text("Sent")
    expect_fits_a_phone(page)


# --- (c) Domain health on Email Settings ------------------------------------------------------


def open_email_settings(page: Page, email: str) -> Locator:
    """Settings → the account's "Email Settings"; returns its Domain health section."""
    open_settings_tab(page)
    account_row(page, email).get_by_role("link", name="Email Settings").click()
    expect(page.get_by_role("heading", name="Email Settings")).to_be_visible()
    return page.get_by_role("region", name="Domain health")


def health_rows(section: Locator) -> Locator:
    return section.get_by_role("table").get_by_role("row")


def test_domain_health_of_a_gmail_address_is_googles_business(
    live_server: str, browser_page: Page
) -> None:
    page = browser_page
    sign_up_and_link(page, live_server)
    health = open_email_settings(page, SENDER)
    expect(health).to_contain_text("Not checked yet.")

    health.get_by_role("button", name="Check now").click()
    expect(page.get_by_role("status")).to_have_text("Domain health checked just now.")
    health = page.get_by_role("region", name="Domain health")
    expect(health).to_contain_text(
        "Handled by Google Google publishes the MX, SPF, DKIM and DMARC records of gmail.test "
        "and signs its mail: there is nothing for you to add."
    )
    expect(health.get_by_role("table")).to_have_count(0)
    expect(health.get_by_label("Other DKIM selectors")).to_have_count(0)
    expect(health).to_contain_text(re.compile(r"Checked \d{4}-\d\d-\d\d \d\d:\d\d UTC"))
    expect_fits_a_phone(page)


def test_domain_health_of_a_workspace_domain_from_its_dns(
    live_servers: LiveServers, browser_page: Page, zone: tuple[Zone, int]
) -> None:
    dns, port = zone
    dns.set(WORKSPACE, "MX", MX("smtp.google.com", 1))
    server = live_servers.start(SENDWELL_DNS_SERVERS=f"127.0.0.1:{port}")
    page = browser_page
    address = f"ada@{WORKSPACE}"
    sign_up_and_link(page, server, address)
    health = open_email_settings(page, address)
    health.get_by_role("button", name="Check now").click()
    expect(page.get_by_role("status")).to_have_text("Domain health checked just now.")
    health = page.get_by_role("region", name="Domain health")
    rows = health_rows(health)
    expect(rows).to_have_count(5)  # the header, MX, SPF, DKIM, DMARC
    expect(rows.nth(1)).to_contain_text("MX OK smtp.google.com (1)", use_inner_text=True)
    expect(rows.nth(2)).to_contain_text("SPF Missing no SPF record", use_inner_text=True)
    expect(rows.nth(2)).to_contain_text(
        f'{WORKSPACE}. TXT "v=spf1 include:_spf.google.com ~all"', use_inner_text=True
    )
    expect(rows.nth(3)).to_contain_text("DKIM Missing", use_inner_text=True)
    expect(rows.nth(3)).to_contain_text("Google Admin console", use_inner_text=True)
    expect(rows.nth(4)).to_contain_text("DMARC Missing", use_inner_text=True)
    expect_fits_a_phone(page)
    back_to_desktop(page)

    # A selector that is not one: said, and what was typed stays.
    health.get_by_label("Other DKIM selectors").fill("s2024, not a selector!")
    health.get_by_role("button", name="Check now").click()
    health = page.get_by_role("region", name="Domain health")
    expect(health.get_by_role("alert")).to_have_text(
        "“selector!” is not a DKIM selector: letters, digits, - and _ only, such as s1 or mail2024."
    )
    expect(health.get_by_label("Other DKIM selectors")).to_have_value("s2024, not a selector!")

    # The administrator publishes SPF and a key under their own selector.
    dns.set(WORKSPACE, "TXT", TXT("v=spf1 include:_spf.google.com ~all"))
    dns.set(f"s2024._domainkey.{WORKSPACE}", "TXT", TXT(KEY))
    health.get_by_label("Other DKIM selectors").fill("s2024")
    health.get_by_role("button", name="Check now").click()
    expect(page.get_by_role("status")).to_have_text("Domain health checked just now.")
    health = page.get_by_role("region", name="Domain health")
    rows = health_rows(health)
    expect(rows.nth(2)).to_contain_text(
        "SPF OK v=spf1 include:_spf.google.com ~all", use_inner_text=True
    )
    expect(rows.nth(3)).to_contain_text("DKIM OK s2024._domainkey", use_inner_text=True)
    expect(health.get_by_label("Other DKIM selectors")).to_have_value("s2024")
    expect_fits_a_phone(page)


# --- (d) the bounce-rate guard ----------------------------------------------------------------


def bounce(server: str, message_id: str) -> None:
    """The recipient's mail server refuses the message: a failure notice reaches the sender."""
    response = httpx.post(
        f"{server}/sandbox/admin/bounce", json={"mailbox": SENDER, "to_message_id": message_id}
    )
    assert response.status_code == 200, response.text


def test_a_campaign_paused_by_its_bounce_rate_says_why(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    """The first email bounces while the campaign is still sending: once three emails have
    gone, one in three bounced is over its limit, and the fourth recipient gets nothing."""
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Old list"
    people = ["grace@example.com", "alan@example.com", "katherine@example.com", "ada@example.com"]
    sign_up_and_link(page, server)
    set_min_gap(page, SENDER, GAP)
    create_campaign(
        page, name, [Step("Hello {{ first_name }}", "Hi."), Step("", "Any news?", 1, "days")]
    )
    # Bounce protection: a third of the latest three emails.
    page.get_by_role("link", name="Edit", exact=True).click()
    guard_fields(page)["percent"].fill("33")
    guard_fields(page)["window"].fill("3")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Changes saved.")
    import_recipients(page, tmp_path, people)
    start_campaign(page, name)

    (first,) = wait_for_sent(server, 1)
    bounce(server, first.message_id)

    open_campaigns_tab(page)
    deadline = time.monotonic() + 30
    while not campaign_row(page, name).get_by_text("Paused", exact=True).count():
        assert time.monotonic() < deadline, f"never paused; sent: {sent_log(server)}"
        page.wait_for_timeout(300)
        page.reload()
    expect_row_status(page, name, "Paused", BOUNCE_RATE)
    time.sleep(GAP * 1.25 + 0.25)
    sent = sent_log(server)
    assert len(sent) == 3, f"sent after the limit was reached: {sent}"
    expect_fits_a_phone(page)
    back_to_desktop(page)

    campaign_row(page, name).get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("main")).to_contain_text(BOUNCE_RATE)
    expect(recipient_rows(page).filter(has_text=first.to)).to_contain_text("Bounced")
    untouched = next(person for person in people if person not in {m.to for m in sent})
    # Nothing goes to them while the campaign is paused, and the row says so (no time).
    row = recipient_rows(page).filter(has_text=untouched)
    expect(row).to_contain_text("Paused · not started")
    expect(row).to_contain_text("Paused — resumes when you click Resume")
    activity = page.get_by_role("region", name="Activity", exact=True)
    expect(activity).to_contain_text(
        "1 of the last 3 emails bounced (33.3 %; the limit is 33 % over 3 emails)."
    )
    expect_fits_a_phone(page)
