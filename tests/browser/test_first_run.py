"""A new user's first visit, in headless Chromium against a real server."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import STRONG_PASSWORD

pytestmark = pytest.mark.browser


def test_first_visit_to_both_messaging_tabs(live_server: str, browser_page: Page) -> None:
    page = browser_page
    page.goto(live_server)
    expect(page.get_by_role("heading", name="Create the first account")).to_be_visible()

    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("status")).to_have_text("Welcome to Sendwell, Ada Lovelace.")
    page.get_by_role("link", name="Messaging", exact=True).click()
    tabs = page.get_by_role("navigation", name="Messaging")
    expect(tabs.get_by_role("link", name="Campaigns")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="No campaigns yet")).to_be_visible()

    tabs.get_by_role("link", name="Settings").click()
    expect(tabs.get_by_role("link", name="Settings")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Your connected email accounts")).to_be_visible()


def test_user_menu_works_from_the_keyboard(live_server: str, browser_page: Page) -> None:
    page = browser_page
    page.goto(live_server)
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()

    menu_button = page.get_by_role("button", name="Ada").or_(
        page.get_by_role("button", name="ada@example.com")
    )
    menu_button.focus()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("menuitem", name="Account and API tokens")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("menu")).to_be_hidden()
    menu_button.press("ArrowUp")
    expect(page.get_by_role("menuitem", name="Sign out")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sign in to Sendwell")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
