"""Pausing from the campaign page while a dispatcher thread is sending.

Once the page says "paused", nothing more arrives; Resume picks up where it stopped and every
recipient gets the step exactly once.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from sendwell.db import session_scope
from sendwell.dispatch.engine import Dispatcher
from sendwell.models import Campaign, CampaignStatus, EnrollmentStatus, PauseReason
from tests.conftest import csrf_from
from tests.dispatch.conftest import World

ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0)]


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@contextmanager
def running(dispatcher: Dispatcher) -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        dispatcher.wake.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


def test_pause_mid_run_stops_sending_and_resume_sends_the_rest_once(world: World) -> None:
    emails = [f"person{i}@example.com" for i in range(30)]
    campaign_id = world.campaign(ONE_STEP, emails, min_gap_seconds=0)
    page = f"/campaigns/{campaign_id}"
    token = csrf_from(world.client.get(page).text)

    # Inbound every few minutes, so each pass is one send (a status change still reads first).
    with running(world.dispatcher(inbound_interval=timedelta(minutes=5))):
        assert wait_until(lambda: len(world.sent()) >= 3, 15)
        paused = world.client.post(f"{page}/pause", data={"csrftoken": token})
        at_pause = len(world.sent())
        assert paused.status_code == 200
        assert "is paused" in html.unescape(paused.text)
        assert at_pause < len(emails), "everything went out before the pause landed"

        time.sleep(1.0)
        assert len(world.sent()) == at_pause
        with session_scope(world.factory) as db:
            campaign = db.get(Campaign, campaign_id)
            assert campaign is not None
            assert (campaign.status, campaign.pause_reason) == (
                CampaignStatus.PAUSED,
                PauseReason.USER,
            )

        resumed = world.client.post(f"{page}/resume", data={"csrftoken": token, "confirmed": "1"})
        assert "active again" in html.unescape(resumed.text)
        # The resume wakes the sleeping dispatcher: well inside its 30 s idle sleep.
        assert wait_until(lambda: len(world.sent()) >= len(emails), 15)
        time.sleep(0.3)

    by_step = world.sent_by_step(campaign_id)
    assert set(by_step) == {(email, 1) for email in emails}
    assert len(world.sent()) == len(emails)
    assert {world.enrollment(campaign_id, e).status for e in emails} == {EnrollmentStatus.COMPLETED}
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.status is CampaignStatus.COMPLETED
