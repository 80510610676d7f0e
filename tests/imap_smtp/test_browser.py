"""The "Other" account in headless Chromium: link through the form, lose the password to a
change at the host, see the warning, reauthenticate with the new password."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServers, browser_page, live_servers  # noqa: F401
from tests.browser.test_mailboxes import account_row, create_first_account, open_settings_tab
from tests.conftest import LOOPBACK_ALLOWED
from tests.imap_smtp.conftest import SENDER, SENDER_PASSWORD, MailServers

pytestmark = pytest.mark.browser


def fill_server_form(page: Page, mail: MailServers, password: str) -> None:
    page.get_by_label("SMTP server").fill("127.0.0.1")
    page.get_by_label("SMTP port").fill(str(mail.smtps_port))
    page.get_by_label("SMTP security").select_option("SSL/TLS")
    page.get_by_label("IMAP server").fill("127.0.0.1")
    page.get_by_label("IMAP port").fill(str(mail.dovecot.imaps_port))
    page.get_by_label("Password or app password").fill(password)
    page.get_by_role("button", name="Sign In", exact=True).click()


def test_other_account_links_breaks_and_is_reauthenticated(
    live_servers: LiveServers,  # noqa: F811
    browser_page: Page,  # noqa: F811
    mail: MailServers,
) -> None:
    server = live_servers.start(
        SENDWELL_MAIL_SERVER_CA_FILE=str(mail.certificates.ca_file),
        SENDWELL_OUTBOUND_ALLOW=LOOPBACK_ALLOWED,
        SENDWELL_DNS_TIMEOUT_SECONDS="0.3",
        SENDWELL_HEALTH_CHECK_MINUTES="0.02",
    )
    page = browser_page
    create_first_account(page, server)
    open_settings_tab(page)
    page.get_by_role("button", name="Link an email account").click()
    dialog = page.get_by_role("dialog", name="Link an email account")
    dialog.get_by_label("Your email account").check()
    dialog.get_by_role("button", name="Continue").click()
    dialog.get_by_label("Email address").fill(SENDER)
    dialog.get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name=f"Which service hosts {SENDER}?")).to_be_visible()
    page.get_by_label(re.compile("Other")).check()
    page.get_by_role("button", name="Sign In", exact=True).click()

    fill_server_form(page, mail, "a wrong password")
    expect(page.get_by_role("alert")).to_contain_text("refused the user name or password (535")
    fill_server_form(page, mail, SENDER_PASSWORD)
    expect(page.get_by_role("status")).to_have_text(f"{SENDER} is connected.")
    expect(account_row(page, SENDER)).to_contain_text("IMAP/SMTP")

    mail.dovecot.set_password(SENDER, "the new app password")
    row = account_row(page, SENDER)
    for _attempt in range(40):
        page.reload()
        if "Reauthentication required" in row.inner_text():
            break
        page.wait_for_timeout(250)
    expect(row).to_contain_text("Reauthentication required")
    row.get_by_role("button", name="Reauthenticate").click()
    expect(page.get_by_role("heading", name=f"Reauthenticate {SENDER}")).to_be_visible()
    expect(page.get_by_label("SMTP port")).to_have_value(str(mail.smtps_port))
    page.get_by_label("Password or app password").fill("the new app password")
    page.get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(f"{SENDER} is reconnected.")
    expect(account_row(page, SENDER)).not_to_contain_text("Reauthentication required")
