"""The first hour of a team, end to end in headless Chromium against a fresh `PORT=… make run`.

No setting but the port: the server links a mailbox at that port; the admin invites a teammate
who signs up from the link; the admin, recruiting, asks for the teammate's mailbox; the teammate
approves in their own session; a campaign runs from it; the teammate withdraws and the campaign
pauses; they approve again, the recruiter resumes, and every (recipient, step) arrives exactly
once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import free_port
from tests.browser.test_campaigns import (
    Step,
    campaign_row,
    choose_from_menu,
    confirm_resume,
    expect_row_status,
    import_recipients,
    open_campaigns_tab,
    sent_log,
    sent_pairs,
    set_min_gap,
    start_campaign,
    wait_for_sent,
)
from tests.browser.test_mailboxes import (
    account_row,
    allow_all_permissions,
    create_first_account,
    link_account,
    open_settings_tab,
    sign_in_at_host,
)
from tests.conftest import STRONG_PASSWORD
from tests.security import log_watch

pytestmark = pytest.mark.browser

ADAS = "ada@gmail.test"
GRACES = "grace@gmail.test"
PEOPLE = ["alan@example.com", "katherine@example.com", "edsger@example.com"]
STEPS = [
    Step("Hello {{ first_name }}", "Hi {{ first_name }}, our team is hiring.\n"),
    Step("", "Any thoughts, {{ first_name }}?", 0, "minutes"),
]
GAP = 3  # seconds between two sends from Grace's account: time to withdraw mid-campaign
WITHDRAWN = (
    "Paused because the sending account's owner withdrew their approval. Resume it after they "
    "approve again."
)


@dataclass
class MakeRun:
    url: str
    process: subprocess.Popen[bytes]
    folder: Path


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[MakeRun]:
    """`PORT=<free port> make run` in a fresh project folder, with no other variable set.

    The folder has the project's Makefile and package files and this checkout's installed
    environment, so `make run` finds the product installed and goes straight to migrating and
    serving, in that folder.
    """
    root = Path(__file__).resolve().parents[2]
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(root / name, folder / name)
    (folder / ".venv").symlink_to(Path(sys.prefix))
    if subprocess.run(["make", "-q", ".venv/.installed-run"], cwd=folder, check=False).returncode:
        pytest.fail("The product is not installed in this environment: run `make install` first.")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_") and k != "HOST"}
    env["PORT"] = str(port)
    log = (folder / "make-run.log").open("wb")
    process = subprocess.Popen(
        ["make", "run"],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("make run did not serve:\n" + (folder / "make-run.log").read_text())
            time.sleep(0.2)
        yield MakeRun(url, process, folder)
    finally:
        # `make` and the `sendwell serve` it started share the session started above.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
        log.close()
    output = (folder / "make-run.log").read_text()
    assert f"Sendwell is running at {url}" in output
    assert "Warning" not in output
    known = [STRONG_PASSWORD, *log_watch.secrets_file_values(folder / "var")]
    leaks = log_watch.check(output.splitlines(), [], known)
    assert not leaks, "Secrets in the server's log:\n" + "\n".join(leaks)


def invite_teammate(page: Page, email: str) -> str:
    """Team → Invite: the page shows the one-time link (this server has no notification mail)."""
    page.get_by_role("link", name="Team", exact=True).click()
    expect(page.get_by_role("heading", name="Team", exact=True)).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Role").select_option("member")
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_role("status")).to_contain_text(f"Invitation for {email} created.")
    link = page.get_by_label("Invitation link").input_value()
    assert link.startswith(page.url.split("/team")[0] + "/invitations/")
    return link


def sign_up_from_the_link(page: Page, link: str, name: str) -> None:
    page.goto(link)
    expect(page.get_by_role("heading", name="Join Sendwell")).to_be_visible()
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("status")).to_have_text(f"Welcome to Sendwell, {name}.")


def ask_for_teammates_account(page: Page, teammate: str) -> None:
    """Link an email account → "A teammate's email account" → Continue → the teammate."""
    open_settings_tab(page)
    page.get_by_role("button", name="Link an email account").click()
    dialog = page.get_by_role("dialog", name="Link an email account")
    dialog.get_by_label("A teammate's email account").check()
    dialog.get_by_role("button", name="Continue").click()
    dialog.get_by_label("Teammate", exact=True).select_option(label=teammate)
    dialog.get_by_label("Note for them (optional)").fill("For the platform engineer roles")
    dialog.get_by_role("button", name="Ask for approval").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Grace Hopper is asked to approve sending from their account."
    )


def review_request(page: Page) -> None:
    """The teammate's Settings tab → Shared with teammates → Review."""
    open_settings_tab(page)
    shared = page.get_by_role("region", name="Shared with teammates")
    expect(shared).to_contain_text("Ada Lovelace")
    expect(shared).to_contain_text("Waiting for approval")
    shared.get_by_role("link", name="Review").click()
    expect(
        page.get_by_role("heading", name="Ada Lovelace asks to send from your email account")
    ).to_be_visible()
    allows = page.get_by_role("list", name="What approving allows")
    expect(allows).to_contain_text("Ada Lovelace may create campaigns that send from")
    expect(allows).to_contain_text("cannot read your mail")
    expect(page.get_by_role("main")).to_contain_text("For the platform engineer roles")


def approve(page: Page, label: str = "Approve") -> None:
    page.get_by_role("button", name=label, exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Approved: Ada Lovelace may send campaigns from {GRACES}."
    )


def create_campaign_from(page: Page, name: str, sender: str) -> None:
    """Campaigns tab → New campaign, sending from the chosen account → Save draft."""
    open_campaigns_tab(page)
    page.get_by_role("link", name="New campaign").first.click()
    page.get_by_label("Campaign name").fill(name)
    page.get_by_label("Send from").select_option(label=sender)
    for index, step in enumerate(STEPS):
        if index:
            page.get_by_role("button", name="Add follow-up").click()
        group = page.get_by_role("group", name="First email" if not index else f"Follow-up {index}")
        if index:
            group.get_by_label("Send", exact=True).fill(str(step.delay))
            group.get_by_label("Unit").select_option(step.unit)
        group.get_by_label("Subject").fill(step.subject)
        group.get_by_label("Body").fill(step.body)
    # New campaigns send on weekdays; these tests send whatever day they run on.
    page.get_by_label("Sat", exact=True).check()
    page.get_by_label("Sun", exact=True).check()
    page.get_by_label("Start delay (minutes)").fill("0")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()


def every_step_once() -> Counter[tuple[str, str]]:
    names = {email: email.split("@")[0].title() for email in PEOPLE}
    return Counter(
        [(email, f"Hello {name}") for email, name in names.items()]
        + [(email, f"Re: Hello {name}") for email, name in names.items()]
    )


def test_a_team_sends_from_a_teammates_mailbox_with_their_approval(
    make_run: MakeRun, browser_page: Page, tmp_path: Path
) -> None:
    server, ada = make_run.url, browser_page
    # Ada: the first account, and her own mailbox linked at this port.
    create_first_account(ada, server)
    open_settings_tab(ada)
    link_account(ada, ADAS)
    allow_all_permissions(ada)
    expect(ada).to_have_url(f"{server}/messaging/settings")
    expect(ada.get_by_role("status")).to_have_text(f"{ADAS} is connected.")

    # Grace joins from the link, in her own browser session.
    link = invite_teammate(ada, "grace@example.com")
    grace_context = ada.context.browser.new_context()  # type: ignore[union-attr]
    grace = grace_context.new_page()
    sign_up_from_the_link(grace, link, "Grace Hopper")

    # Ada asks for Grace's mailbox; Grace links hers at her host and approves.
    ask_for_teammates_account(ada, "Grace Hopper (grace@example.com)")
    review_request(grace)
    grace.get_by_label("Link your email account").fill(GRACES)
    grace.get_by_role("button", name="Sign In", exact=True).click()
    sign_in_at_host(grace, GRACES)
    allow_all_permissions(grace)
    expect(grace.get_by_role("status")).to_have_text(
        f"{GRACES} is connected. Review the request and approve it."
    )
    approve(grace)
    request_page = grace.url
    set_min_gap(grace, GRACES, GAP)

    # Ada's campaign from Grace's account.
    open_settings_tab(ada)
    expect(account_row(ada, GRACES, "Teammates' email accounts")).to_contain_text("Approved")
    name = "Platform engineers"
    create_campaign_from(ada, name, f"{GRACES} (Grace Hopper's account)")
    import_recipients(ada, tmp_path, PEOPLE)
    start_campaign(ada, name)
    wait_for_sent(server, 2, mailbox=GRACES)

    # Grace withdraws mid-campaign: it pauses, with the reason, and nothing more goes out.
    grace.goto(request_page)
    expect(grace.get_by_role("main")).to_contain_text(name)
    grace.get_by_role("button", name="Withdraw approval").click()
    grace.get_by_role("dialog", name="Withdraw your approval?").get_by_role(
        "button", name="Withdraw approval"
    ).click()
    expect(grace.get_by_role("status")).to_contain_text(
        f"Approval withdrawn: Ada Lovelace can no longer send from {GRACES}; 1 campaign paused."
    )
    withdrawn_at, sent_before = datetime.now(UTC), len(sent_log(server, GRACES))
    assert sent_before < len(every_step_once())
    open_campaigns_tab(ada)
    expect_row_status(ada, name, "Paused", WITHDRAWN)
    choose_from_menu(ada, name, "Resume")
    expect(ada.get_by_role("status")).to_contain_text(
        f"Grace Hopper has not approved Ada Lovelace to send from {GRACES}"
    )
    ada.wait_for_timeout(GAP * 1.25 * 1000 + 500)
    assert len(sent_log(server, GRACES)) == sent_before

    # Grace approves again; Ada resumes from the menu; the rest goes out, each exactly once.
    approve(grace, "Approve again")
    resumed_at = datetime.now(UTC)
    open_campaigns_tab(ada)
    choose_from_menu(ada, name, "Resume")
    confirm_resume(ada)
    expect(ada.get_by_role("status")).to_have_text(
        f"“{name}” is active again and resumes from where it left off."
    )
    log = wait_for_sent(server, len(every_step_once()), mailbox=GRACES, timeout=60)
    time.sleep(GAP * 1.25 + 0.25)
    log = sent_log(server, GRACES)
    assert sent_pairs(log) == every_step_once(), log
    assert not [m for m in log if withdrawn_at < m.at < resumed_at], "sent while withdrawn"
    assert sent_log(server, ADAS) == []  # nothing from Ada's own account
    ada.reload()
    expect(campaign_row(ada, name)).to_contain_text("6 sent")

    # Grace sees every campaign sent from her account.
    grace.goto(request_page)
    sent_table = grace.get_by_role("region", name=f"Campaigns sent from {GRACES}")
    expect(sent_table.get_by_role("row").filter(has_text=name)).to_contain_text("6")
    grace_context.close()
