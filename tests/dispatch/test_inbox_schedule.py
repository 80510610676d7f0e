"""Each inbox is read on its own schedule: every read interval while its mailbox sends or
receives, less and less often while it is quiet (down to once per quiet interval), and
always just before a follow-up goes. What the host sees is counted: Gmail's history.list
calls for the INBOX label, as the sandbox served them."""

from __future__ import annotations

import time
from datetime import timedelta
from itertools import pairwise

from sendwell.models import EnrollmentStatus
from tests.dispatch.conftest import SENDER, World
from tests.dispatch.hosts import SandboxHost
from tests.dispatch.test_pause import running, wait_until

# The follow-up is a day away: after the first email nothing is due to send, and the campaign
# keeps running, so its inbox is read for replies.
TWO_STEPS = [
    ("Hello {{ first_name }}", "A quick question.", 0),
    ("", "Any news?", 1440),
]
INTERVAL = timedelta(seconds=1)
QUIET = timedelta(seconds=4)


def gaps(moments: list[float]) -> list[float]:
    return [later - earlier for earlier, later in pairwise(moments)]


def test_a_quiet_inbox_is_read_less_often_and_a_reply_still_comes_through(world: World) -> None:
    # Bob's follow-up keeps the campaign running (and its inbox read) after Ann answers.
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    host = SandboxHost("Gmail", SENDER, world.sandbox)
    dispatcher = world.dispatcher(inbound_interval=INTERVAL, inbound_quiet_interval=QUIET)
    with running(dispatcher):
        assert wait_until(
            lambda: all(len(host.received(p)) == 1 for p in ("ann@example.com", "bob@example.com")),
            15,
        )
        sent_at = time.monotonic()
        # Quiet: each read finds nothing and follows no send, so the waits double (2 s, 4 s)
        # and stay at the quiet interval.
        assert wait_until(lambda: len(world.sandbox.inbox_reads(sent_at)) >= 5, 40)
        quiet = gaps(world.sandbox.inbox_reads(sent_at))
        assert quiet[-1] >= 0.9 * QUIET.total_seconds(), quiet
        assert quiet[-2] >= 0.9 * QUIET.total_seconds(), quiet
        assert quiet[0] < quiet[-1], quiet
        # Read every second, the same 5 reads would have taken 4 s, not 10 or more.
        assert sum(quiet) >= 9.0, quiet

        host.reply(host.received("ann@example.com")[0])
        replied_at = time.monotonic()
        assert wait_until(
            lambda: (
                world.enrollment(campaign_id, "ann@example.com").status is EnrollmentStatus.REPLIED
            ),
            QUIET.total_seconds() + 10,
        )
        # The reply is seen by the next read on the quiet schedule, and the read that found
        # it brings the inbox back to the read interval.
        found = world.sandbox.inbox_reads(replied_at)
        assert found, "no inbox read after the reply"
        assert found[0] - replied_at <= QUIET.total_seconds() + 2, found
        assert wait_until(lambda: len(world.sandbox.inbox_reads(replied_at)) >= 3, 15)
        after = gaps(world.sandbox.inbox_reads(replied_at))
        assert after[0] < 0.75 * QUIET.total_seconds(), after


def test_a_follow_up_waits_for_a_fresh_read_however_quiet_the_inbox(world: World) -> None:
    """The inbox has gone quiet (read once a minute at most by now); the recipient answers and
    their follow-up falls due a moment later. The answer is read before the follow-up could
    go, not at the next quiet read: the follow-up is never sent."""
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    host = SandboxHost("Gmail", SENDER, world.sandbox)
    dispatcher = world.dispatcher(
        inbound_interval=INTERVAL, inbound_quiet_interval=timedelta(minutes=1)
    )
    with running(dispatcher):
        assert wait_until(
            lambda: all(len(host.received(p)) == 1 for p in ("ann@example.com", "bob@example.com")),
            15,
        )
        sent_at = time.monotonic()
        # Read at 1 s, then 2 s, then 4 s after that: the next one is 8 s away.
        assert wait_until(lambda: len(world.sandbox.inbox_reads(sent_at)) >= 3, 20)
        host.reply(host.received("ann@example.com")[0])
        world.due_now(campaign_id, ago=timedelta(0))
        assert wait_until(lambda: len(host.received("bob@example.com")) == 2, 15)
        assert world.enrollment(campaign_id, "ann@example.com").status is EnrollmentStatus.REPLIED
        assert len(host.received("ann@example.com")) == 1
