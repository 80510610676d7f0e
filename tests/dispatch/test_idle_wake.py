"""A dispatcher with nothing due sleeps (up to 30 s), but not through work it was given: new
recipients of a running campaign go at once, and replies are read on the inbox schedule."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from sendwell.campaigns import recipients
from sendwell.db import session_scope
from sendwell.dispatch.engine import IDLE_WAKE
from sendwell.models import EnrollmentStatus, User
from tests.dispatch.conftest import SENDER, World
from tests.dispatch.hosts import SandboxHost
from tests.dispatch.test_pause import running, wait_until

# The follow-up is a day away: after the first step nothing is due to send, and the campaign
# is still running.
TWO_STEPS = [
    ("Hello {{ first_name }}", "A quick question.", 0),
    ("", "Any news?", 1440),
]
# Well inside the idle sleep: what a wake-up makes, and a sleep does not.
PROMPTLY = IDLE_WAKE.total_seconds() / 3


def test_recipients_added_to_a_running_campaign_go_at_once(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["first@example.com"])
    with running(world.dispatcher(inbound_interval=timedelta(minutes=5))):
        assert wait_until(lambda: len(world.sent()) == 1, PROMPTLY)
        time.sleep(0.5)  # the dispatcher has nothing left: it sleeps
        with session_scope(world.factory) as db:
            user = db.scalars(select(User)).first()
            assert user is not None
            recipients.add_recipients(
                db,
                user,
                campaign_id,
                [recipients.RecipientIn("later@example.com", first_name="Lee")],
            )
        assert wait_until(lambda: len(world.sent()) == 2, PROMPTLY)


def test_a_reply_is_read_on_the_inbox_schedule_while_nothing_is_due(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com"])
    host = SandboxHost("Gmail", SENDER, world.sandbox)
    with running(world.dispatcher(inbound_interval=timedelta(seconds=2))):
        assert wait_until(lambda: len(host.received("ann@example.com")) == 1, PROMPTLY)
        host.reply(host.received("ann@example.com")[0])
        assert wait_until(
            lambda: (
                world.enrollment(campaign_id, "ann@example.com").status is EnrollmentStatus.REPLIED
            ),
            PROMPTLY,
        )
