"""5. Pause cost: every active campaign of one mailbox paused in one unit of work.

200 active campaigns share the enrollments (same dataset as the claim benchmark). A run is
`pause_campaigns_for_mailbox` plus its commit, timed in this process; the campaigns are set
active again between runs. Measured at the smallest and largest size, so the ratio shows
whether the cost follows the recipients (it must not) or only the campaigns.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, delete, update

from bench import dataset
from bench.common import Figure, Profile, Section, ratio
from bench.stack import Lab, database, seed_owner
from sendwell.campaigns.service import pause_campaigns_for_mailbox
from sendwell.db import make_session_factory
from sendwell.models import Campaign, CampaignEvent, CampaignStatus, PauseReason

GROUP = "5. Pause cost"


def pause_once(engine: Engine, mailbox_id: int, campaigns: int) -> float:
    """Milliseconds to pause the mailbox's campaigns and commit; then they are active again."""
    db = make_session_factory(engine)()
    try:
        started = time.perf_counter()
        paused = pause_campaigns_for_mailbox(db, mailbox_id, PauseReason.MAILBOX_REAUTH_REQUIRED)
        db.commit()
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        db.close()
    if len(paused) != campaigns:
        raise RuntimeError(f"paused {len(paused)} campaigns, expected {campaigns}")
    with engine.begin() as connection:
        connection.execute(update(Campaign).values(status=CampaignStatus.ACTIVE, pause_reason=None))
        connection.execute(delete(CampaignEvent))
    return elapsed


def run(profile: Profile, lab: Lab) -> Section:
    figures = []
    sizes = sorted({profile.scale_sizes[0], profile.scale_sizes[-1]})
    for backend, db_name in (("postgresql", "PostgreSQL"), ("sqlite", "SQLite")):
        with database(backend, lab.folder) as db:
            seed_owner(db.engine)
            owner_id, mailbox_id = dataset.mailbox_row(db.engine, "pause@gmail.test")
            times: dict[int, list[float]] = {}
            for size in sizes:
                dataset.load(
                    db.engine,
                    owner_id=owner_id,
                    mailbox_id=mailbox_id,
                    campaigns=profile.pause_campaigns,
                    enrollments=size,
                    due=profile.due,
                )
                times[size] = [
                    pause_once(db.engine, mailbox_id, profile.pause_campaigns)
                    for _ in range(profile.repeats * 2)
                ]
        base = Figure(GROUP, "", "", times[sizes[0]]).value
        for size in sizes:
            value = Figure(GROUP, "", "", times[size]).value
            figures.append(
                Figure(
                    GROUP,
                    f"{db_name}: pause {profile.pause_campaigns} campaigns, {size:,} enrollments",
                    "ms",
                    times[size],
                    target="< 100 ms",
                    met=value < 100,
                    versus=f"{ratio(value, base):.2f}x at {sizes[0]:,}",
                    digits=2,
                )
            )
    return Section(
        GROUP,
        f"{profile.pause_campaigns} active campaigns of one mailbox sharing the enrollments; "
        "`pause_campaigns_for_mailbox` (select for update, one UPDATE, one event row per "
        f"campaign) and its commit, timed in-process, {profile.repeats * 2} runs per size.",
        figures,
    )
