"""Take the screenshots of docs/tour.md from the real product: `make tour`.

A fresh `sendwell serve` with the sandbox's emulated Google and Microsoft (as `make run`
starts it) is put in the middle of real use by tests/browser/scene.py — a campaign sending,
an account whose grant was revoked, a campaign waiting for Resume — and headless Chromium
photographs the cockpit, on a desktop and on a 390 px wide phone. The PNG files replace those
in docs/tour/; docs/tour.md shows them. Takes about a minute.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, LiveServers
from tests.browser.scene import BROKEN, SENDING, SERVER_ENV, Scene, build
from tests.browser.test_campaigns import SENDER, sent_log

OUT = Path(__file__).resolve().parent.parent / "docs" / "tour"
DESKTOP = (1280, 800)
PHONE = (390, 844)


@dataclass(frozen=True)
class Shot:
    """One screenshot: its file name, the page, and what must be on it before it is taken."""

    name: str
    path: Callable[[Scene], str]
    ready: Callable[[Page], None]
    viewport: tuple[int, int] = DESKTOP
    full_page: bool = True


def _heading(text: str) -> Callable[[Page], None]:
    return lambda page: expect(page.get_by_role("heading", name=text).first).to_be_visible()


def _a_reply(page: Page) -> None:
    """The Replies tab once the mailbox's next reading has found the reply."""
    replies = page.get_by_role("region", name="Replies", exact=True)
    for _ in range(60):
        if replies.get_by_role("link", name="Open thread").count():
            return
        page.wait_for_timeout(500)
        page.reload()
    expect(replies.get_by_role("link", name="Open thread").first).to_be_visible()


def _reply_to_the_first_email(server: str) -> None:
    """The first person Spring outreach emailed answers, in the sandbox's mailbox."""
    first = sent_log(server, SENDER)[0]
    answer = httpx.post(
        f"{server}/sandbox/admin/reply",
        json={"mailbox": SENDER, "to_message_id": first.message_id},
        timeout=30,
    )
    answer.raise_for_status()


def _banner(page: Page) -> None:
    banner = page.get_by_role("alert").filter(has_text=f"{BROKEN} needs reauthentication")
    expect(banner.get_by_role("button", name="Reauthenticate")).to_be_visible()


SHOTS = [
    Shot("campaigns-tab", lambda s: "/messaging/campaigns", _banner),
    Shot("campaign-sending", lambda s: f"/campaigns/{s.sending}", _heading(SENDING)),
    Shot(
        "recipient",
        lambda s: f"/campaigns/{s.sending}/recipients/{s.sending_recipient}",
        _heading("maximiliane"),
    ),
    Shot("replies", lambda s: "/messaging/replies", _a_reply),
    Shot("settings-broken-account", lambda s: "/messaging/settings", _banner),
    Shot("resume-preview", lambda s: f"/campaigns/{s.back_campaign}/resume", _heading("Resume")),
    Shot("editor-follow-ups", lambda s: f"/campaigns/{s.draft}/edit", _heading("Edit campaign")),
    Shot("phone-campaigns-tab", lambda s: "/messaging/campaigns", _banner, PHONE, False),
    Shot("phone-campaign", lambda s: f"/campaigns/{s.sending}", _heading(SENDING), PHONE, False),
    Shot(
        "phone-recipients",
        lambda s: f"/campaigns/{s.sending}#recipients",
        _heading("Recipients"),
        PHONE,
        False,
    ),
    Shot("phone-settings", lambda s: "/messaging/settings", _banner, PHONE, False),
]


def shoot(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    taken = []
    with tempfile.TemporaryDirectory(prefix="sendwell-tour-") as folder:
        servers = LiveServers(Path(folder))
        try:
            server = servers.start(**SERVER_ENV)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
                scene = build(page, server)
                _reply_to_the_first_email(server)
                for shot in SHOTS:
                    width, height = shot.viewport
                    page.set_viewport_size({"width": width, "height": height})
                    page.goto(server + shot.path(scene))
                    shot.ready(page)
                    target = out / f"{shot.name}.png"
                    page.screenshot(path=target, full_page=shot.full_page)
                    taken.append(target)
                browser.close()
        finally:
            servers.stop_all()
    return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNG files go")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.stderr.write(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)\n")
        return 1
    began = time.monotonic()
    for path in shoot(args.out):
        sys.stdout.write(f"wrote {path}\n")
    sys.stdout.write(f"{time.monotonic() - began:.0f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
