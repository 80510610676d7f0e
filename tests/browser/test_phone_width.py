"""Every page fits a 390 px wide phone: nothing is wider than the screen, in every state that
matters — the broken-account banner with its Reauthenticate button, the recipients table, a
campaign while sending and one waiting for Resume, the editor with several follow-ups, the
Resume preview, the unsubscribe page, error pages, sign-in and first-run pages.

"Every page" is read from the app's live route table (as tests/security/routes.py does): each
GET route is visited as an admin, as a member and signed out, with its path filled from the
objects of tests/browser/scene.py; whatever answers HTML is a page and is checked with every
<details> opened and every menu shown, then with each <dialog> shown in turn. A page added later
is covered without touching this file, unless its path names something new: then the test
fails saying what to add to fills().
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Response,
    ViewportSize,
    expect,
)
from playwright.sync_api import Error as PlaywrightError

from sendwell.app import create_app
from tests.browser.conftest import LiveServers
from tests.browser.scene import MEMBER, SERVER_ENV, Scene, build
from tests.conftest import STRONG_PASSWORD, make_settings
from tests.security.routes import MISSING_ID, served_routes

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}

# GET routes that are not visited, each with its reason. Keep this list tiny.
UNREACHABLE = {
    "/mailboxes/{mailbox_id}/password": (
        "only IMAP/SMTP accounts have a password page, and linking one needs the Dovecot and "
        "Postfix servers of tests/imap_smtp; its form is the link form's (/mailboxes/link/server)"
    ),
}


def fills(scene: Scene) -> list[dict[str, str]]:
    """Path values, one dict per state: a route is visited once with each dict that names all
    of its path parameters. A route whose parameters no dict names fails the test."""
    return [
        # A campaign while sending, a recipient who got step 1, a healthy account, ...
        {
            "campaign_id": str(scene.sending),
            "enrollment_id": str(scene.sending_recipient),
            "mailbox_id": str(scene.ada_mailbox),
            "endpoint_id": str(scene.endpoint),
            "user_id": str(scene.member),
            "delegation_id": str(scene.delegation),
            "provider": "google",
        },
        # A draft with several follow-ups; the account that needs reauthentication.
        {
            "campaign_id": str(scene.draft),
            "enrollment_id": str(scene.draft_recipient),
            "mailbox_id": str(scene.broken_mailbox),
            "provider": "microsoft",
        },
        # Paused because its account broke.
        {"campaign_id": str(scene.broken_campaign), "enrollment_id": str(scene.broken_recipient)},
        # Waiting for Resume after its account was linked again (Resume preview, Resume all).
        {
            "campaign_id": str(scene.back_campaign),
            "enrollment_id": str(scene.back_recipient),
            "mailbox_id": str(scene.back_mailbox),
        },
    ]


def fills_for_path(scene: Scene) -> dict[str, list[dict[str, str]]]:
    """Parameters whose meaning depends on the route (several routes call theirs `token`)."""
    return {
        "/u/{token}": [
            {"token": scene.unsubscribe_url.rsplit("/", 1)[1]},
            {"token": "not-a-signed-token"},
        ],
        "/invitations/{token}": [{"token": scene.invitation_url.rsplit("/", 1)[1]}],
        "/campaigns/{campaign_id}/recipients/import/{token}": [
            {"campaign_id": str(scene.draft), "token": scene.import_path.rsplit("/", 1)[1]}
        ],
    }


PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")

# What sticks out of the screen. An element clipped by a scrolling (or clipping) ancestor does
# not widen the page; the ancestor itself is checked. Elements parked off-screen to the left
# (the skip link) do not scroll the page either. Only the innermost offenders are named: they
# are what to fix.
OVERFLOW_SCRIPT = """() => {
  const limit = document.documentElement.clientWidth;
  const clipped = element => {
    for (let up = element.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== 'visible') return true;
    }
    return false;
  };
  // Its box, or its own text when that overflows the box (a long word in a heading).
  const right = element => {
    const box = element.getBoundingClientRect();
    const text = getComputedStyle(element).overflowX === 'visible' && element.clientWidth
      ? box.left + element.scrollWidth : box.right;
    return Math.max(box.right, text);
  };
  // Past the right edge (the page scrolls sideways), or cut by the left edge (a menu
  // opening leftwards from a button near it).
  const sticksOut = element => {
    const box = element.getBoundingClientRect();
    return (box.width || box.height) && box.right > 0 && !clipped(element)
      && (right(element) > limit + 1 || box.left < -1);
  };
  const wide = [...document.querySelectorAll('body *')].filter(sticksOut);
  const innermost = wide.filter(
    element => !wide.some(other => other !== element && element.contains(other)));
  const describe = element => {
    const classes = [...element.classList].map(name => '.' + name).join('');
    const text = (element.innerText || element.value || '').trim().replace(/\\s+/g, ' ');
    const name = element.tagName.toLowerCase() + classes;
    return `<${name}> ends at ${Math.round(right(element))} px: "${text.slice(0, 60)}"`;
  };
  return {
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: limit,
    elements: innermost.slice(0, 6).map(describe),
  };
}"""

# Every <details> opened and every menu (three dots, the user menu) shown.
OPEN_ALL = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('[role=menu][hidden]').forEach(m => { m.hidden = false; });
}"""
DIALOG_COUNT = "() => document.querySelectorAll('dialog').length"
SHOW_DIALOG = """index => {
  document.querySelectorAll('dialog[open]').forEach(d => d.close());
  const dialog = document.querySelectorAll('dialog')[index];
  dialog.showModal();
  return dialog.getAttribute('aria-labelledby') || dialog.id || 'dialog ' + index;
}"""


@dataclass
class Findings:
    overflows: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)
    not_pages: set[str] = field(default_factory=set)

    def check(self, page: Page, label: str) -> None:
        """The page with its <details> opened and menus shown, then with each dialog shown."""
        page.evaluate(OPEN_ALL)
        self._measure(page, label)
        for index in range(page.evaluate(DIALOG_COUNT)):
            name = page.evaluate(SHOW_DIALOG, index)
            self._measure(page, f"{label}, dialog {name}")
        self.checked.add(label)

    def _measure(self, page: Page, label: str) -> None:
        found = page.evaluate(OVERFLOW_SCRIPT)
        if found["scrollWidth"] > found["clientWidth"] or found["elements"]:
            lines = "\n    ".join(found["elements"]) or "(no single element: margins add up)"
            self.overflows.append(
                f"{label} is {found['scrollWidth']} px wide on a {found['clientWidth']} px "
                f"phone:\n    {lines}"
            )

    def visit(self, page: Page, server: str, path: str, label: str) -> None:
        """One navigation: its answer's headers tell whether the route is a page; only a
        page is waited for and checked."""
        response = _open(page, server + path)
        if response is None:
            self.not_pages.add(label)
            return
        if response.status >= 500:
            self.broken.append(f"{label} answered {response.status}")
            return
        page.wait_for_load_state("load")
        final = page.url.removeprefix(server)
        self.check(page, label if final == path else f"{label} -> {final}")


def _open(page: Page, url: str) -> Response | None:
    """Navigate to `url` as far as its answer's headers (after redirects): the answer when
    it is HTML, else None. Anything else is never waited for (a stream of server-sent events
    would never let a navigation finish): the next visit's navigation leaves it. A file
    download is no page either."""
    try:
        response = page.goto(url, wait_until="commit")
    except PlaywrightError as error:
        if "Download is starting" in error.message:
            return None
        raise
    assert response is not None, url
    if response.headers.get("content-type", "").startswith("text/html"):
        return response
    return None


def route_paths(server: str, database_url: str) -> list[str]:
    """The GET routes of the live route table (pages, API, mounts), in a stable order."""
    app = create_app(make_settings(database_url, base_url=server, sandbox=True))
    return sorted(path for method, path in served_routes(app) if method in ("GET", "*"))


def filled(path: str, scene: Scene) -> list[str]:
    names = set(PARAMETER.findall(path))
    if not names:
        return [path]
    candidates = fills_for_path(scene).get(path) or [
        values for values in fills(scene) if names <= values.keys()
    ]
    assert candidates, (
        f"GET {path} needs {', '.join(sorted(names))} and no state of the phone-width test "
        "names it: create the object in tests/browser/scene.py (build) and add its id to "
        "fills() in tests/browser/test_phone_width.py (or fills_for_path() if the name means "
        "something else on this route), or, if it truly cannot be reached, to UNREACHABLE "
        "with the reason."
    )
    urls = []
    for values in candidates:
        url = path
        for name in names:
            url = re.sub(rf"{{{name}(?::\w+)?}}", values[name], url)
        if url not in urls:
            urls.append(url)
    return urls


def phone_context(browser: Browser) -> BrowserContext:
    return browser.new_context(viewport=PHONE)


def sign_in(page: Page, server: str, email: str, password: str) -> None:
    page.goto(f"{server}/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def post_sign_in_form(page: Page, change: str) -> None:
    """Post the sign-in page's form after `change` (JavaScript given `form`) altered it."""
    with page.expect_navigation():
        page.evaluate(
            f"() => {{ const form = document.querySelector('form'); {change} form.submit(); }}"
        )


def test_every_page_fits_a_390_px_wide_phone(live_servers: LiveServers, browser_page: Page) -> None:
    browser = browser_page.context.browser
    assert browser is not None
    server = live_servers.start(**SERVER_ENV)
    findings = Findings()

    # Before the first account: the first-run page.
    first_run = phone_context(browser)
    findings.visit(first_run.new_page(), server, "/", "/ (first run)")
    first_run.close()

    page = browser_page
    page.set_viewport_size(DESKTOP)
    scene = build(page, server)
    paths = route_paths(server, live_servers.database_url(server))
    unknown = set(UNREACHABLE) - set(paths)
    assert not unknown, f"UNREACHABLE names routes that no longer exist: {unknown}"

    # Signed in as Ada (an admin, whose account needs reauthentication: the banner is on every
    # page), then signed out.
    page.set_viewport_size(PHONE)
    page.goto(f"{server}/messaging/settings")
    banner = page.get_by_role("alert").filter(has_text="broken@gmail.test needs reauthentication")
    expect(banner.get_by_role("button", name="Reauthenticate")).to_be_visible()
    anonymous = phone_context(browser)
    member = phone_context(browser).new_page()
    sign_in(member, server, MEMBER, STRONG_PASSWORD)
    expect(member.get_by_role("link", name="Messaging", exact=True)).to_be_visible()
    visitors = [
        (page, "signed in"),
        (member, "a member"),
        (anonymous.new_page(), "signed out"),
    ]
    for path in paths:
        if path in UNREACHABLE:
            continue
        for url in filled(path, scene):
            for visitor, who in visitors:
                findings.visit(visitor, server, url, f"{url} ({who})")

    # The states that matter were reached as themselves, not through a redirect elsewhere.
    token = scene.unsubscribe_url.rsplit("/", 1)[1]
    expected = {
        f"/campaigns/{scene.back_campaign}/resume (signed in)",  # the Resume preview
        f"/mailboxes/{scene.back_mailbox}/resume-all (signed in)",
        f"/campaigns/{scene.sending}/recipients/{scene.sending_recipient} (signed in)",
        f"/campaigns/{scene.draft}/edit (signed in)",  # the editor with four follow-ups
        f"/delegations/{scene.delegation} (signed in)",
        f"/delegations/{scene.delegation} (a member)",
        f"/u/{token} (signed out)",
        "/sign-in (signed out)",
    }
    assert expected <= findings.checked, sorted(expected - findings.checked)

    # States no plain GET reaches.
    page.goto(f"{server}/campaigns/{MISSING_ID}")
    findings.check(page, "the not-found page")
    page.goto(f"{server}/campaigns/{scene.sending}/edit")
    page.get_by_label("Campaign name").fill("")
    page.get_by_role("button", name="Save changes").evaluate("b => b.form.noValidate = true")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert").first).to_be_visible()
    findings.check(page, "the editor refusing a change")
    unsubscribe = anonymous.new_page()
    unsubscribe.goto(scene.unsubscribe_url)
    unsubscribe.get_by_role("button", name=re.compile("Unsubscribe")).click()
    findings.check(unsubscribe, "the unsubscribe page, done")
    refused = anonymous.new_page()
    sign_in(refused, server, "ada@example.com", "not the password at all")
    expect(refused.get_by_role("alert")).to_be_visible()
    findings.check(refused, "sign-in refused")
    # A form posted with a stale CSRF token, and one whose body is over the limit.
    post_sign_in_form(refused, "form.querySelector('[name=csrftoken]').value = 'stale';")
    expect(refused.get_by_role("heading", name="This form has expired")).to_be_visible()
    findings.check(refused, "the stale-form page")
    refused.goto(f"{server}/sign-in")
    post_sign_in_form(
        refused,
        """const filler = document.createElement('input');
        filler.type = 'hidden'; filler.name = 'filler'; filler.value = 'x'.repeat(11 << 20);
        form.appendChild(filler);""",
    )
    expect(refused.get_by_role("heading", name="That was too large")).to_be_visible()
    findings.check(refused, "the too-large page")
    anonymous.close()

    report = "\n".join(findings.broken + findings.overflows)
    assert not report, f"{len(findings.checked)} pages checked; these do not fit:\n{report}"
    assert len(findings.checked) > 40, sorted(findings.checked)
