"""The sending engine through the sandbox over real HTTP: exactly once, threaded, paced."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select

from sendwell.db import session_scope
from sendwell.models import Campaign, CampaignStatus, Enrollment, EnrollmentStatus
from tests.dispatch.conftest import World

THREE_STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0),
    ("Re: Hello {{ first_name }}", "Following up.", 0),
    ("Re: Hello {{ first_name }}", "Last note.", 0),
]


def test_three_steps_to_fifty_recipients_exactly_once_and_threaded(world: World) -> None:
    emails = [f"person{i}@example.com" for i in range(50)]
    campaign_id = world.campaign(THREE_STEPS, emails)
    world.dispatcher().run_until_idle()
    sent = world.sent()
    assert len(sent) == 150
    per_recipient: dict[str, list[dict[str, Any]]] = {}
    for message in sent:
        per_recipient.setdefault(str(message["to"][0]).split("<")[-1].rstrip(">"), []).append(
            message
        )
    assert set(per_recipient) == set(emails)
    for messages in per_recipient.values():
        assert len(messages) == 3
        first, second, third = messages
        assert first["thread_id"] == second["thread_id"] == third["thread_id"]
        assert second["headers"]["In-Reply-To"] == first["headers"]["Message-ID"]
        assert third["headers"]["In-Reply-To"] == second["headers"]["Message-ID"]
        assert len({m["headers"]["X-Sendwell-Send-Id"] for m in messages}) == 3
        assert "List-Unsubscribe" in first["headers"]
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.status is CampaignStatus.COMPLETED
        statuses = set(db.scalars(select(Enrollment.status)))
    assert statuses == {EnrollmentStatus.COMPLETED}


def test_min_gap_paces_the_mailbox(world: World) -> None:
    world.campaign(
        [("Hi", "Hello", 0)], ["a@example.com", "b@example.com", "c@example.com"], min_gap_seconds=1
    )
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    assert len(world.sent()) == 1
    deadline = time.monotonic() + 15
    while len(world.sent()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        dispatcher.run_once()
    times = sorted(datetime.fromisoformat(str(m["sent_at"])) for m in world.sent())
    assert len(times) == 3
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(gap >= 1.0 for gap in gaps), gaps
