"""Linking, removing and reauthenticating an email account, step by step as the help article
"How to Reauthenticate your Email" tells users, in headless Chromium against a real server and
the sandbox's emulated Google and Microsoft sign-in pages."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import LiveServers
from tests.conftest import STRONG_PASSWORD

pytestmark = pytest.mark.browser

GOOGLE = "ada.lovelace@gmail.test"
MICROSOFT = "ada@contoso.outlook.test"
EMAIL_PASSWORD = "the mailbox's own password"


def create_first_account(page: Page, server: str) -> None:
    """A fresh server's first visit: create the first (admin) account, as test_first_run does."""
    page.goto(server)
    expect(page.get_by_role("heading", name="Create the first account")).to_be_visible()
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("status")).to_have_text("Welcome to Sendwell, Ada Lovelace.")


def open_settings_tab(page: Page) -> None:
    """The article: 'Go to the Messaging section and select the Settings tab.'"""
    page.get_by_role("link", name="Messaging", exact=True).click()
    tabs = page.get_by_role("navigation", name="Messaging")
    tabs.get_by_role("link", name="Settings").click()
    expect(tabs.get_by_role("link", name="Settings")).to_have_attribute("aria-current", "page")


def link_account(page: Page, email: str) -> None:
    """From the Settings tab to the mail host's sign-in page, signed in there.

    "Click Link an email account. In the pop-up, check the box next to Your email account, and
    then click Continue. Type in your email and click Sign In ... Login using your email
    address and password." Leaves the browser on the host's next page (consent, or admin).
    """
    page.get_by_role("button", name="Link an email account").click()
    dialog = page.get_by_role("dialog", name="Link an email account")
    dialog.get_by_label("Your email account").check()
    dialog.get_by_role("button", name="Continue").click()
    dialog.get_by_label("Email address").fill(email)
    dialog.get_by_role("button", name="Sign In", exact=True).click()
    sign_in_at_host(page, email)


def sign_in_at_host(page: Page, email: str) -> None:
    """The emulated Google or Microsoft sign-in page."""
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(EMAIL_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def allow_all_permissions(page: Page) -> None:
    """ "Ensure that you accept all permissions asked" on the host's consent page."""
    expect(page.get_by_role("heading", name=re.compile("^Sendwell wants access"))).to_be_visible()
    for permission in page.get_by_role("checkbox").all():
        expect(permission).to_be_checked()
    page.get_by_role("button", name="Allow").click()


def connected_list(page: Page) -> Locator:
    return page.get_by_role("region", name="Your connected email accounts")


def account_row(page: Page, email: str, section: str = "Your connected email accounts") -> Locator:
    region = page.get_by_role("region", name=section)
    return region.get_by_role("listitem").filter(has_text=email)


def expect_connected_without_warning(page: Page, email: str, provider: str) -> None:
    row = account_row(page, email)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(provider)
    expect(row).to_contain_text("Connected")
    expect(row.get_by_role("img", name="Warning")).to_have_count(0)
    expect(row).not_to_contain_text("Reauthentication required")
    expect(row.get_by_role("button", name="Reauthenticate")).to_have_count(0)


def expect_nothing_connected(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"/messaging/settings$"))
    region = connected_list(page)
    expect(region.get_by_role("heading", name="No email account is connected")).to_be_visible()
    expect(region.get_by_role("listitem")).to_have_count(0)
    expect(page.get_by_role("region", name="Disconnected accounts")).to_have_count(0)


def email_settings_href(page: Page, email: str) -> str:
    href = account_row(page, email).get_by_role("link", name="Email Settings").get_attribute("href")
    assert href is not None
    assert re.fullmatch(r"/mailboxes/\d+", href), href
    return href


@pytest.mark.parametrize(
    ("email", "provider"), [(GOOGLE, "Google"), (MICROSOFT, "Microsoft")], ids=["google", "ms"]
)
def test_first_link_follows_the_article(
    live_server: str, browser_page: Page, email: str, provider: str
) -> None:
    page = browser_page
    create_first_account(page, live_server)
    open_settings_tab(page)
    expect_nothing_connected(page)

    link_account(page, email)
    allow_all_permissions(page)

    # "You will be automatically returned to the Messaging Settings tab."
    expect(page).to_have_url(f"{live_server}/messaging/settings")
    expect(page.get_by_role("status")).to_have_text(f"{email} is connected.")
    expect_connected_without_warning(page, email, provider)


def test_microsoft_account_that_needs_admin_approval(live_server: str, browser_page: Page) -> None:
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    email = "needs-admin@contoso.outlook.test"
    create_first_account(page, live_server)
    open_settings_tab(page)
    link_account(page, email)

    # "Microsoft Users: You may see a message indicating you need admin approval."
    expect(page.get_by_role("heading", name="Need admin approval")).to_be_visible()
    page.get_by_role("link", name="Return to the application without granting consent").click()

    expect(
        page.get_by_role("heading", name="Your administrator must approve Sendwell")
    ).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(f"so {email} could not be linked yet")
    approval_link = page.get_by_label("Admin approval link")
    expect(approval_link).not_to_be_editable()
    expect(approval_link).to_have_value(re.compile(r"/adminconsent\?client_id="))
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == approval_link.input_value()

    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open the page to forward to your administrator").click()
    printable = opened.value
    expect(
        printable.get_by_role("heading", name="Approve Sendwell for your organisation")
    ).to_be_visible()
    permissions = printable.get_by_role("table")
    expect(permissions.get_by_role("columnheader")).to_have_text(
        ["Permission", "Why Sendwell needs it"]
    )
    send_row = permissions.get_by_role("row").filter(has_text="Send mail as you")
    expect(send_row).to_contain_text("Mail.Send")
    expect(send_row).to_contain_text("Campaign emails go out from your own Outlook mailbox")
    expect(permissions.get_by_role("row").filter(has_text="Mail.ReadBasic")).to_contain_text(
        "never message bodies"
    )
    expect(printable.get_by_role("main")).to_contain_text(approval_link.input_value())
    printable.close()

    page.get_by_role("link", name="Back to Settings").click()
    expect_nothing_connected(page)


def test_unticked_permission_is_named_and_can_be_linked_again(
    live_server: str, browser_page: Page
) -> None:
    page = browser_page
    create_first_account(page, live_server)
    open_settings_tab(page)
    link_account(page, GOOGLE)

    page.get_by_label("Send email on your behalf").uncheck()
    page.get_by_role("button", name="Allow").click()

    expect(page.get_by_role("heading", name=f"{GOOGLE} was not connected")).to_be_visible()
    missing = page.get_by_role("main").get_by_role("listitem")
    expect(missing).to_have_count(1)
    expect(missing).to_contain_text("Send email on your behalf")
    link_again = page.get_by_role("button", name="Link again")
    expect(link_again).to_be_visible()

    settings = page.context.new_page()
    settings.goto(f"{live_server}/messaging/settings")
    expect_nothing_connected(settings)
    settings.close()

    link_again.click()
    sign_in_at_host(page, GOOGLE)
    allow_all_permissions(page)
    expect(page.get_by_role("status")).to_have_text(f"{GOOGLE} is connected.")
    expect_connected_without_warning(page, GOOGLE, "Google")


@pytest.mark.parametrize(
    ("email", "provider"), [(GOOGLE, "Google"), (MICROSOFT, "Microsoft")], ids=["google", "ms"]
)
def test_cancel_on_the_consent_page_links_nothing(
    live_server: str, browser_page: Page, email: str, provider: str
) -> None:
    page = browser_page
    create_first_account(page, live_server)
    open_settings_tab(page)
    link_account(page, email)

    page.get_by_role("button", name="Cancel").click()

    expect(page.get_by_role("status")).to_have_text(
        f"You cancelled at {provider}. No account was linked."
    )
    expect_nothing_connected(page)


def test_remove_account_then_link_it_again(live_server: str, browser_page: Page) -> None:
    page = browser_page
    create_first_account(page, live_server)
    open_settings_tab(page)
    link_account(page, MICROSOFT)
    allow_all_permissions(page)
    expect(page.get_by_role("status")).to_have_text(f"{MICROSOFT} is connected.")
    settings_href = email_settings_href(page, MICROSOFT)

    # "Click on Email Settings from the connected account and select Remove Account."
    account_row(page, MICROSOFT).get_by_role("link", name="Email Settings").click()
    expect(page.get_by_role("heading", name="Email Settings")).to_be_visible()
    page.get_by_role("button", name="Remove Account").click()
    # "In the pop-up, click Disconnect, then confirm your choice by clicking Disconnect again."
    first = page.get_by_role("dialog", name=f"Remove {MICROSOFT}?")
    first.get_by_role("button", name="Disconnect").click()
    expect(first).to_be_hidden()
    second = page.get_by_role("dialog", name="Are you sure?")
    expect(second).to_contain_text(f"{MICROSOFT} will be disconnected from Sendwell now.")
    second.get_by_role("button", name="Disconnect").click()

    expect(page).to_have_url(f"{live_server}/messaging/settings")
    expect(page.get_by_role("status")).to_have_text(
        f"{MICROSOFT} is disconnected. Its history is kept."
    )
    expect(connected_list(page).get_by_role("listitem")).to_have_count(0)
    gone = account_row(page, MICROSOFT, "Disconnected accounts")
    expect(gone).to_have_count(1)
    expect(gone).to_contain_text("Microsoft · Disconnected")

    # "Reconnect Your Email": the same account comes back, with its history.
    link_account(page, MICROSOFT)
    allow_all_permissions(page)
    expect(page.get_by_role("status")).to_have_text(f"{MICROSOFT} is reconnected.")
    expect_connected_without_warning(page, MICROSOFT, "Microsoft")
    expect(page.get_by_role("region", name="Disconnected accounts")).to_have_count(0)
    assert email_settings_href(page, MICROSOFT) == settings_href


def test_health_check_finds_a_revoked_grant_and_reauthenticate_fixes_it(
    live_servers: LiveServers, browser_page: Page
) -> None:
    server = live_servers.start(SENDWELL_HEALTH_CHECK_MINUTES="0.05")  # every 3 seconds
    page = browser_page
    create_first_account(page, server)
    open_settings_tab(page)
    link_account(page, GOOGLE)
    allow_all_permissions(page)
    expect(page.get_by_role("status")).to_have_text(f"{GOOGLE} is connected.")
    settings_href = email_settings_href(page, GOOGLE)

    # The user revokes Sendwell's access at Google (or changes their password).
    response = httpx.post(f"{server}/sandbox/admin/revoke", json={"mailbox": GOOGLE})
    assert response.status_code == 200, response.text
    assert response.json()["revoked"]

    row = account_row(page, GOOGLE)
    warning = row.get_by_role("img", name="Warning")
    deadline = time.monotonic() + 20
    while True:
        page.reload()
        if warning.count():
            break
        assert time.monotonic() < deadline, "the health check never marked the account"
        page.wait_for_timeout(500)
    expect(row).to_contain_text("Reauthentication required")
    expect(page.get_by_role("status")).to_have_count(0)

    row.get_by_role("button", name="Reauthenticate").click()
    sign_in_at_host(page, GOOGLE)
    allow_all_permissions(page)

    expect(page).to_have_url(f"{server}/messaging/settings")
    expect(page.get_by_role("status")).to_have_text(f"{GOOGLE} is reconnected.")
    expect_connected_without_warning(page, GOOGLE, "Google")
    assert email_settings_href(page, GOOGLE) == settings_href


def test_link_dialog_is_a_keyboard_usable_modal(live_server: str, browser_page: Page) -> None:
    page = browser_page
    create_first_account(page, live_server)
    open_settings_tab(page)
    opener = page.get_by_role("button", name="Link an email account")
    dialog = page.get_by_role("dialog", name="Link an email account")
    own = dialog.get_by_label("Your email account")

    opener.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("element => element.matches(':modal')")
    expect(own).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()

    # The whole pop-up from the keyboard: tick, Continue, type the address, Sign In.
    for attempt in ("escape at the second step", "finish"):
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        expect(own).to_be_focused()
        expect(own).not_to_be_checked()
        page.keyboard.press("Space")
        expect(own).to_be_checked()
        page.keyboard.press("Tab")
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        page.keyboard.press("Tab")
        expect(dialog.get_by_role("button", name="Continue")).to_be_focused()
        page.keyboard.press("Enter")
        expect(dialog.get_by_label("Email address")).to_be_focused()
        if attempt == "finish":
            break
        # Escape from the second step closes the pop-up; it opens again at its first step.
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(opener).to_be_focused()
    page.keyboard.type(GOOGLE)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value(GOOGLE)


def test_link_dialog_opened_again_at_once_is_fresh(live_server: str, browser_page: Page) -> None:
    # A dialog's "close" event is a task of its own: opening the pop-up again before it runs
    # (a quick Escape and Enter) must still start at the first step, with the focus in it.
    page = browser_page
    create_first_account(page, live_server)
    open_settings_tab(page)
    dialog = page.get_by_role("dialog", name="Link an email account")
    own = dialog.get_by_label("Your email account")
    page.get_by_role("button", name="Link an email account").click()
    own.check()
    dialog.get_by_role("button", name="Continue").click()
    expect(dialog.get_by_label("Email address")).to_be_focused()

    page.evaluate(
        """() => {
            document.getElementById("link-dialog").close();
            document.querySelector("[data-dialog-open=link-dialog]").click();
        }"""
    )
    expect(dialog).to_be_visible()
    expect(own).to_be_focused()
    expect(own).not_to_be_checked()
    expect(dialog.get_by_label("Email address")).to_be_hidden()
