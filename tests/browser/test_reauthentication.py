"""The help article "How to Reauthenticate your Email", end to end while a campaign is sending.

A real `sendwell serve` sends a campaign through the sandbox's emulated Gmail; the grant is
revoked at the host mid-campaign. The account must be flagged, the campaign paused with the
reason shown, and after reconnecting and resuming every recipient must get the step exactly
once — nothing lost, nothing twice, nothing sent while paused.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServers
from tests.browser.test_campaigns import (
    FAST,
    SENDER,
    Sent,
    Step,
    campaign_row,
    choose_from_menu,
    confirm_resume,
    create_campaign,
    expect_row_status,
    import_recipients,
    open_campaigns_tab,
    recipient_rows,
    revoke,
    sent_log,
    sent_pairs,
    set_min_gap,
    sign_up_and_link,
    start_campaign,
    wait_for_sent,
)
from tests.browser.test_mailboxes import (
    account_row,
    allow_all_permissions,
    connected_list,
    expect_connected_without_warning,
    link_account,
    open_settings_tab,
    sign_in_at_host,
)

pytestmark = pytest.mark.browser

PEOPLE = ["grace", "alan", "katherine", "edsger", "barbara", "donald"]
TWO_STEPS = [
    Step("Hello {{ first_name }}", "Hi {{ first_name }},\nshall we talk?\n"),
    Step("", "Hi again {{ first_name }}.", 1, "days"),
]
GAP = 3  # seconds between two sends of the account: sending six takes a while
NEEDS_REAUTH = "Paused because the sending account needs reauthentication."


def addresses(count: int) -> list[str]:
    return [f"{person}@example.com" for person in PEOPLE[:count]]


def first_subject(email: str) -> str:
    return f"Hello {email.split('@')[0].title()}"


def each_got_the_first_step_once(recipients: list[str]) -> Counter[tuple[str, str]]:
    return Counter((email, first_subject(email)) for email in recipients)


def start_sending(
    page: Page,
    server: str,
    folder: Path,
    name: str,
    recipients: list[str],
    steps: list[Step] = TWO_STEPS,
) -> None:
    """First account, ada@gmail.test linked with a 3 s gap, a campaign started to recipients."""
    sign_up_and_link(page, server)
    set_min_gap(page, SENDER, GAP)
    create_campaign(page, name, steps)
    import_recipients(page, folder, recipients)
    start_campaign(page, name)


def revoke_after(server: str, sent: int) -> tuple[datetime, int]:
    """Revoke the grant right after the `sent`-th message landed: the next send is at least the
    3 s gap away, so none is in flight. Returns when, and how many had been sent."""
    wait_for_sent(server, sent)
    revoke(server)
    revoked_at = datetime.now(UTC)
    log = sent_log(server)
    assert len(log) == sent, f"a send slipped in before the revoke: {log}"
    return revoked_at, len(log)


def wait_for_banner(page: Page, email: str = SENDER, timeout: float = 15) -> None:
    """Reload until the banner across Messaging names the account."""
    banner = page.get_by_role("alert").filter(has_text=f"{email} needs reauthentication.")
    deadline = time.monotonic() + timeout
    while True:
        page.reload()
        if banner.count():
            return
        assert time.monotonic() < deadline, "no banner: the broken account was never noticed"
        page.wait_for_timeout(300)


def expect_banner(page: Page, paused: int, email: str = SENDER) -> None:
    banner = page.get_by_role("alert")
    expect(banner).to_have_count(1)
    expect(banner).to_contain_text(f"{email} needs reauthentication.")
    words = "1 campaign is" if paused == 1 else f"{paused} campaigns are"
    expect(banner).to_contain_text(f"{words} paused until you reconnect it and resume.")
    expect(banner.get_by_role("button", name="Reauthenticate")).to_be_visible()


def expect_paused_list(page: Page, names: list[str], email: str = SENDER) -> None:
    """Settings: the account's campaigns paused by the connection change, with "Resume all"."""
    waiting = account_row(page, email).get_by_role("status")
    expect(waiting).to_contain_text(
        "These campaigns were paused when this account's connection changed. "
        "They stay paused until you resume them"
    )
    expect(waiting.get_by_role("listitem")).to_have_text(names)
    expect(waiting.get_by_role("button", name="Resume all")).to_be_visible()


def expect_nothing_sent_while_paused(
    server: str, since: datetime, count: int, resumed_at: datetime
) -> list[Sent]:
    """No message between the pause and the resume: the count did not move, and every message
    after `since` went out after the resume."""
    log = sent_log(server)
    early = [m for m in log if since < m.at < resumed_at]
    assert not early, f"sent while paused: {early}"
    assert len([m for m in log if m.at <= since]) == count
    return log


def wait_until_all_sent(server: str, recipients: list[str], timeout: float = 30) -> list[Sent]:
    """Every recipient's first step, then one more gap to be sure no duplicate follows."""
    wait_for_sent(server, len(recipients), timeout=timeout)
    time.sleep(GAP * 1.25 + 0.25)
    log = sent_log(server)
    assert sent_pairs(log) == each_got_the_first_step_once(recipients), log
    return log


def remove_account(page: Page, email: str) -> None:
    """Settings → "Email Settings" → "Remove Account" → "Disconnect" → "Disconnect"."""
    open_settings_tab(page)
    account_row(page, email).get_by_role("link", name="Email Settings").click()
    expect(page.get_by_role("heading", name="Email Settings")).to_be_visible()
    page.get_by_role("button", name="Remove Account").click()
    page.get_by_role("dialog", name=f"Remove {email}?").get_by_role(
        "button", name="Disconnect"
    ).click()
    page.get_by_role("dialog", name="Are you sure?").get_by_role(
        "button", name="Disconnect"
    ).click()
    expect(page.get_by_role("status")).to_have_text(
        f"{email} is disconnected. Its history is kept."
    )


def test_revoked_mid_campaign_then_removed_linked_again_and_resumed_from_the_menu(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Autumn hiring"
    recipients = addresses(6)
    start_sending(page, server, tmp_path, name, recipients)
    revoked_at, sent_before = revoke_after(server, 3)

    # Noticed within seconds: the banner across Messaging, and the campaign paused with why.
    open_campaigns_tab(page)
    wait_for_banner(page)
    assert (datetime.now(UTC) - revoked_at).total_seconds() < 15
    expect_banner(page, paused=1)
    expect_row_status(page, name, "Paused", NEEDS_REAUTH)
    campaign_row(page, name).get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("main")).to_contain_text(NEEDS_REAUTH)
    expect_banner(page, paused=1)
    open_settings_tab(page)
    expect_banner(page, paused=1)
    expect(account_row(page, SENDER)).to_contain_text("Reauthentication required")

    # "Disconnect Your Email"
    remove_account(page, SENDER)
    expect(page.get_by_role("alert")).to_have_count(0)

    # "Reconnect Your Email": the pop-up, the host's sign-in and its permissions.
    link_account(page, SENDER)
    allow_all_permissions(page)
    expect(page).to_have_url(f"{server}/messaging/settings")
    expect(page.get_by_role("status").first).to_have_text(f"{SENDER} is reconnected.")
    expect(connected_list(page)).to_contain_text(SENDER)
    expect_connected_without_warning(page, SENDER, "Google")
    expect_paused_list(page, [name])
    expect(page.get_by_role("alert")).to_have_count(0)

    # Reconnecting alone sends nothing: "you will need to resume each one".
    open_campaigns_tab(page)
    expect_row_status(page, name, "Paused", NEEDS_REAUTH)
    assert len(sent_log(server)) == sent_before
    resumed_at = datetime.now(UTC)
    choose_from_menu(page, name, "Resume")
    confirm_resume(page)
    expect(page.get_by_role("status")).to_have_text(
        f"“{name}” is active again and resumes from where it left off."
    )
    expect_row_status(page, name, "Active")

    wait_until_all_sent(server, recipients)
    expect_nothing_sent_while_paused(server, revoked_at, sent_before, resumed_at)
    page.reload()
    expect(campaign_row(page, name)).to_contain_text(f"0 / 6 finished · {len(recipients)} sent")


def test_reauthenticate_from_the_banner_then_resume_all(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Winter alumni"
    recipients = addresses(5)
    start_sending(page, server, tmp_path, name, recipients)
    revoked_at, sent_before = revoke_after(server, 3)

    open_campaigns_tab(page)
    wait_for_banner(page)
    expect_banner(page, paused=1)
    expect_row_status(page, name, "Paused", NEEDS_REAUTH)

    # The banner's own "Reauthenticate": straight to the host, as the same account.
    page.get_by_role("alert").get_by_role("button", name="Reauthenticate").click()
    sign_in_at_host(page, SENDER)
    allow_all_permissions(page)
    expect(page).to_have_url(f"{server}/messaging/settings")
    expect(page.get_by_role("status").first).to_have_text(f"{SENDER} is reconnected.")
    expect_connected_without_warning(page, SENDER, "Google")
    expect(page.get_by_role("alert")).to_have_count(0)
    expect_paused_list(page, [name])
    assert len(sent_log(server)) == sent_before

    resumed_at = datetime.now(UTC)
    account_row(page, SENDER).get_by_role("button", name="Resume all").click()
    # The preview: try another catch-up choice and see its effect before resuming as shown.
    expect(page.get_by_label("Each campaign's own setting")).to_be_checked()
    page.get_by_label("Shift every pending step later by the length of the pause").check()
    page.get_by_role("button", name="Show what this does").click()
    expect(page.get_by_role("main")).to_contain_text("Moved later")
    expect(page.get_by_role("main")).to_contain_text(name)
    confirm_resume(page, "Resume all")
    expect(page.get_by_role("status")).to_have_text(
        f"Resumed 1 campaign: “{name}”. Sending continues from where each left off."
    )
    expect(account_row(page, SENDER).get_by_role("button", name="Resume all")).to_have_count(0)
    open_campaigns_tab(page)
    expect_row_status(page, name, "Active")

    wait_until_all_sent(server, recipients)
    expect_nothing_sent_while_paused(server, revoked_at, sent_before, resumed_at)


def test_reauthenticating_a_healthy_account_pauses_its_active_campaign(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    """ "When you reauthenticate your email, any Active message campaigns are paused." """
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Healthy but reauthenticated"
    recipients = addresses(4)
    start_sending(page, server, tmp_path, name, recipients)
    wait_for_sent(server, 1)

    open_settings_tab(page)
    link_account(page, SENDER)
    allow_all_permissions(page)
    expect(page.get_by_role("status").first).to_have_text(f"{SENDER} is reconnected.")
    expect_connected_without_warning(page, SENDER, "Google")
    expect(page.get_by_role("alert")).to_have_count(0)
    expect_paused_list(page, [name])
    # A send already handed to the host when the pause committed may still land; after that,
    # for longer than the account's gap, nothing more goes out.
    page.wait_for_timeout(500)
    paused_at, sent_before = datetime.now(UTC), len(sent_log(server))
    assert sent_before < len(recipients)

    open_campaigns_tab(page)
    expect_row_status(
        page,
        name,
        "Paused",
        "Paused because the sending account was reauthenticated. Resume when ready.",
    )
    page.wait_for_timeout(GAP * 1.25 * 1000 + 500)
    resumed_at = datetime.now(UTC)
    choose_from_menu(page, name, "Resume")
    confirm_resume(page)
    expect_row_status(page, name, "Active")

    wait_until_all_sent(server, recipients)
    expect_nothing_sent_while_paused(server, paused_at, sent_before, resumed_at)


def test_resume_is_refused_while_the_account_needs_reauthentication(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Still broken"
    recipients = addresses(3)
    start_sending(page, server, tmp_path, name, recipients)
    _revoked_at, sent_before = revoke_after(server, 1)

    open_campaigns_tab(page)
    wait_for_banner(page)
    expect_row_status(page, name, "Paused", NEEDS_REAUTH)

    refusal = f"{SENDER} needs reauthentication. Reconnect it on the Settings tab, then resume."
    choose_from_menu(page, name, "Resume")
    expect(page.get_by_role("status")).to_have_text(refusal)
    expect_row_status(page, name, "Paused", NEEDS_REAUTH)

    # The campaign page's own Resume button is refused the same way.
    campaign_row(page, name).get_by_role("link", name=name, exact=True).click()
    page.get_by_role("button", name="Resume", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(refusal)
    expect(page.get_by_role("main")).to_contain_text(NEEDS_REAUTH)

    # The account's Settings row offers Reauthenticate, not Resume all.
    open_settings_tab(page)
    expect(account_row(page, SENDER).get_by_role("button", name="Resume all")).to_have_count(0)
    expect(account_row(page, SENDER).get_by_role("button", name="Reauthenticate")).to_be_visible()

    page.wait_for_timeout(GAP * 1.25 * 1000 + 500)
    assert len(sent_log(server)) == sent_before


def test_a_reply_during_the_pause_stops_that_recipient(
    live_servers: LiveServers, browser_page: Page, tmp_path: Path
) -> None:
    """ "Replies that arrived meanwhile are read first": no follow-up to who replied."""
    server = live_servers.start(**FAST)
    page = browser_page
    name = "Quick follow-up"
    recipients = addresses(2)
    steps = [TWO_STEPS[0], Step("", "Any news?", 0, "minutes")]
    start_sending(page, server, tmp_path, name, recipients, steps)
    # The first recipient's step 1 is out; their step 2 is due at once, but the 3 s gap holds
    # it back long enough to revoke.
    _revoked_at, _sent = revoke_after(server, 1)
    first = sent_log(server)[0]
    other = next(email for email in recipients if email != first.to)

    open_campaigns_tab(page)
    wait_for_banner(page)
    expect_row_status(page, name, "Paused", NEEDS_REAUTH)

    # The recipient answers while the campaign is paused.
    response = httpx.post(
        f"{server}/sandbox/admin/reply",
        json={"mailbox": SENDER, "to_message_id": first.message_id},
    )
    assert response.status_code == 200, response.text

    page.get_by_role("alert").get_by_role("button", name="Reauthenticate").click()
    sign_in_at_host(page, SENDER)
    allow_all_permissions(page)
    expect(page.get_by_role("status").first).to_have_text(f"{SENDER} is reconnected.")
    account_row(page, SENDER).get_by_role("button", name="Resume all").click()
    confirm_resume(page, "Resume all")
    expect(page.get_by_role("status")).to_contain_text(f"Resumed 1 campaign: “{name}”.")

    # The other recipient gets both steps; then every recipient has finished.
    open_campaigns_tab(page)
    deadline = time.monotonic() + 30
    while True:
        page.reload()
        if campaign_row(page, name).get_by_text("Completed", exact=True).count():
            break
        assert time.monotonic() < deadline, f"never completed; sent: {sent_log(server)}"
        page.wait_for_timeout(500)
    other_name = other.split("@")[0].title()
    assert sent_pairs(sent_log(server)) == Counter(
        {
            (first.to, first.subject): 1,
            (other, f"Hello {other_name}"): 1,
            (other, f"Re: Hello {other_name}"): 1,
        }
    )
    campaign_row(page, name).get_by_role("link", name=name, exact=True).click()
    expect(recipient_rows(page).filter(has_text=first.to)).to_contain_text("Replied")
    expect(recipient_rows(page).filter(has_text=other)).to_contain_text("Completed")
