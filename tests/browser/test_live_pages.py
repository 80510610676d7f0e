"""Live pages in a real browser: a campaign's page and the Campaigns tab follow the sending
on their own — from "0" sent to "Completed" — with no reload (a marker set on the page's
window survives, and the browser never navigates)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Frame, Page, expect
from sqlalchemy import select, update

from sendwell.db import make_engine, make_session_factory, session_scope
from sendwell.kit.clock import utcnow
from sendwell.kit.signals import dispatch_work
from sendwell.models import Campaign, Enrollment
from tests.browser.conftest import LiveServers
from tests.browser.test_campaigns import (
    FAST,
    SENDER,
    Step,
    campaign_row,
    create_campaign,
    import_recipients,
    open_campaigns_tab,
    recipient_rows,
    set_min_gap,
    sign_up_and_link,
    start_campaign,
    wait_for_sent,
)
from tests.browser.test_delivery_guards import expect_fits_a_phone

pytestmark = pytest.mark.browser

PEOPLE = ["grace@example.com", "alan@example.com", "katherine@example.com"]
# Long enough for the page to show "0" before anything goes; the test then brings the
# first emails forward in the database.
START_DELAY_MINUTES = 30
# Polls come every few seconds; the server's dispatcher is woken by the change's commit.
LIVE_TIMEOUT = 90_000


def with_database(server_db: str, change: str) -> None:
    """Set up what the UI cannot reach quickly: a start delay, or the first emails due now.
    New work is announced as the product's own services do (`dispatch_work`): the server's
    dispatcher, in another process, wakes on the commit instead of at its next look."""
    engine = make_engine(server_db)
    try:
        with session_scope(make_session_factory(engine)) as db:
            if change == "delay":
                db.execute(update(Campaign).values(start_delay_minutes=START_DELAY_MINUTES))
            else:
                ids = list(db.scalars(select(Enrollment.id)))
                db.execute(
                    update(Enrollment).where(Enrollment.id.in_(ids)).values(next_due_at=utcnow())
                )
                dispatch_work.request(db)
    finally:
        engine.dispose()


class Navigations:
    """Counts the page's own navigations (a reload or a form post would be one)."""

    def __init__(self, page: Page) -> None:
        self.count = 0
        self.page = page
        page.on("framenavigated", self._seen)

    def _seen(self, frame: Frame) -> None:
        if frame == self.page.main_frame:
            self.count += 1


def mark(page: Page) -> Navigations:
    page.evaluate("window.__liveMarker = 'set before'")
    return Navigations(page)


def expect_not_reloaded(page: Page, navigations: Navigations) -> None:
    assert page.evaluate("window.__liveMarker") == "set before"
    assert navigations.count == 0


def started_with_a_delay(page: Page, server: str, live_servers: LiveServers, name: str) -> str:
    sign_up_and_link(page, server)
    set_min_gap(page, SENDER, 1)
    create_campaign(page, name, [Step("Hello {{ first_name }}", "Hi {{ first_name }}.")])
    import_recipients(page, Path(live_servers.tmp_path), PEOPLE)
    server_db = live_servers.database_url(server)
    with_database(server_db, "delay")
    start_campaign(page, name)
    return server_db


def test_a_campaign_page_goes_from_nothing_sent_to_completed_on_its_own(
    live_servers: LiveServers, browser_page: Page
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Watched live"
    server_db = started_with_a_delay(page, server, live_servers, name)

    numbers = page.get_by_role("region", name="Numbers")
    sent = numbers.locator('[data-live-count="sent"]')
    expect(sent).to_have_text("0")
    badge = page.locator('.section-head [data-live="status"]')
    expect(badge).to_have_text("Active")
    rows = recipient_rows(page)
    expect(rows).to_have_count(len(PEOPLE) + 1)
    expect(rows.nth(1)).to_contain_text("Not Started")
    expect(page.get_by_text("Nothing has been sent yet.")).to_be_visible()
    navigations = mark(page)

    with_database(server_db, "due now")
    expect(sent).to_have_text("3", timeout=LIVE_TIMEOUT)
    expect(badge).to_have_text("Completed", timeout=LIVE_TIMEOUT)
    for index in range(1, len(PEOPLE) + 1):
        expect(rows.nth(index)).to_contain_text("Completed")
        expect(rows.nth(index)).to_contain_text("1 / 1")
    expect(numbers.locator('[data-live-count="finished"]')).to_have_text("3")
    # The chart was drawn in place, with its legend.
    expect(page.get_by_role("img", name="Sent per day, last 30 days")).to_be_visible()
    expect(page.get_by_role("list", name="Steps")).to_contain_text("Step 1")
    expect(page.locator('[data-live="next-send"]')).to_have_text("Completed")
    # Pause no longer applies to a completed campaign: its button is gone.
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_hidden()
    assert len(wait_for_sent(server, 3)) == 3
    expect_not_reloaded(page, navigations)
    expect_fits_a_phone(page)


def test_a_campaigns_tab_row_follows_the_sending_on_its_own(
    live_servers: LiveServers, browser_page: Page
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Tab watched live"
    server_db = started_with_a_delay(page, server, live_servers, name)

    open_campaigns_tab(page)
    row = campaign_row(page, name)
    status, progress = row.locator('[data-live="status"]'), row.locator('[data-live="progress"]')
    expect(status).to_have_text("Active")
    expect(progress).to_contain_text("0 / 3 finished · 0 sent")
    expect(progress).to_contain_text("Next email")
    navigations = mark(page)

    with_database(server_db, "due now")
    expect(progress).to_contain_text("3 / 3 finished · 3 sent", timeout=LIVE_TIMEOUT)
    expect(status).to_have_text("Completed", timeout=LIVE_TIMEOUT)
    # The three-dots menu now offers what a completed campaign allows.
    page.get_by_role("button", name=f"Actions for {name}").click()
    menu = row.get_by_role("menu")
    expect(menu.get_by_role("menuitem", name="Archive", exact=True)).to_be_visible()
    expect(menu.get_by_role("menuitem", name="Pause", exact=True)).to_have_count(0)
    expect_not_reloaded(page, navigations)
    page.keyboard.press("Escape")
    expect_fits_a_phone(page)
