"""7. Campaigns tab: server time to render the tab with 1,000 campaigns.

The tab lists 50 campaigns a page, newest first, with a pager that counts them all; the
figure is its first page.

The claim benchmark's dataset with 1,000 campaigns of one mailbox sharing the largest size of
enrollments. The app runs in this process (`create_app` on the benchmark's database) and is
called through Starlette's in-process client, signed in as the workspace's owner, so a
figure is the server's own time for one GET of the tab: routing, session, queries and the
template, with no network in between.
"""

from __future__ import annotations

import re
import time

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from bench import dataset
from bench.common import Figure, Profile, Section, ratio
from bench.stack import OWNER, PASSWORD, Lab, csrf, database, seed_owner
from sendwell.app import create_app
from sendwell.config import Settings

GROUP = "7. Campaigns tab"
CAMPAIGNS = 1_000
TAB = "/messaging/campaigns"


def render_times(client: TestClient, runs: int) -> tuple[list[float], list[float]]:
    """Milliseconds per GET of the tab, and of the (small) account page as the anchor."""
    tab: list[float] = []
    anchor: list[float] = []
    for _ in range(runs):
        for path, into in ((TAB, tab), ("/account", anchor)):
            started = time.perf_counter()
            response = client.get(path)
            into.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered {response.status_code}")
    return tab, anchor


def run(profile: Profile, lab: Lab) -> Section:
    size = profile.scale_sizes[-1]
    runs = 10 if not profile.full else 30
    figures = []
    for backend, db_name in (("postgresql", "PostgreSQL"), ("sqlite", "SQLite")):
        with database(backend, lab.folder) as db:
            seed_owner(db.engine)
            owner_id, mailbox_id = dataset.mailbox_row(db.engine, "tab@gmail.test")
            dataset.load(
                db.engine,
                owner_id=owner_id,
                mailbox_id=mailbox_id,
                campaigns=CAMPAIGNS,
                enrollments=size,
                due=profile.due,
            )
            settings = Settings(
                _env_file=None,
                database_url=db.url,
                secret_key="bench-" + "t" * 40,
                token_keys=Fernet.generate_key().decode(),
                log_level="WARNING",
            )
            with TestClient(create_app(settings, engine=db.engine)) as client:
                page = client.get("/sign-in")
                signed_in = client.post(
                    "/sign-in",
                    data={"csrftoken": csrf(page.text), "email": OWNER, "password": PASSWORD},
                    follow_redirects=False,
                )
                if signed_in.status_code != 303:
                    raise RuntimeError(f"sign-in answered {signed_in.status_code}")
                shown = client.get(TAB).text
                total = re.search(r"of ([\d,]+) campaigns", shown)
                if total is None or int(total.group(1).replace(",", "")) < CAMPAIGNS:
                    raise RuntimeError("the tab does not count every campaign")
                tab, anchor = render_times(client, runs)
        value = Figure(GROUP, "", "", tab).value
        base = Figure(GROUP, "", "", anchor).value
        figures += [
            Figure(
                GROUP,
                f"{db_name}: Campaigns tab, {CAMPAIGNS:,} campaigns, {size:,} enrollments",
                "ms",
                tab,
                target="median < 100 ms",
                met=value < 100,
                versus=f"{ratio(value, base):.1f}x the Account page",
            ),
            Figure(GROUP, f"{db_name}: anchor: the Account page", "ms", anchor),
        ]
    return Section(
        GROUP,
        f"{CAMPAIGNS:,} campaigns of one mailbox sharing {size:,} enrollments (the claim "
        "benchmark's dataset); the app in this process, signed in as the owner; each figure is "
        f"one GET answered in full, {runs} runs, alternating with the Account page as anchor. "
        "The tab shows 50 campaigns a page (newest first) and counts them all.",
        figures,
    )
