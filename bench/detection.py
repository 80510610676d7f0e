"""3. Detection: a grant revoked in the sandbox → the mailbox needs reauthentication and its
campaigns are paused.

(a) With sends flowing (pacing off): how many send attempts failed at the provider before the
    mailbox became reauth_required, counted by the sandbox itself.
(b) With nothing due: how long until the campaign shows as paused, against the health-check
    interval (SENDWELL_HEALTH_CHECK_MINUTES, set short for this stack).
"""

from __future__ import annotations

import random
import time

from bench.common import Figure, Profile, Section
from bench.stack import Lab, Stack, parse_moment, wait_until

GROUP = "3. Detection latency"


def status_is(stack: Stack, path: str, status: str) -> bool:
    return bool(stack.call("GET", path)["status"] == status)


def while_sending(stack: Stack, label: str) -> tuple[int, float, int, bool]:
    """(failed send attempts, seconds to reauth_required, sends accepted after the revoke
    had answered, campaign paused)."""
    address = f"detect-{label}@gmail.test"
    mailbox_id = stack.link(address)
    campaign_id = stack.campaign(mailbox_id, 1_000)
    wait_until(lambda: len(stack.sent(address)) >= 10, 120, "sends to flow", stack.procs)
    before = stack.counts()
    revoked_at = time.time()
    stack.revoke(address)
    revoke_answered = time.time()
    wait_until(
        lambda: status_is(stack, f"/mailboxes/{mailbox_id}", "reauth_required"),
        60,
        "reauth_required",
        stack.procs,
        step=0.02,
    )
    detected = time.time() - revoked_at
    time.sleep(1.0)  # let anything still in a worker's hands finish
    after = stack.counts()
    late = sum(1 for m in stack.sent(address) if parse_moment(m["sent_at"]) > revoke_answered)
    paused = status_is(stack, f"/campaigns/{campaign_id}", "paused")
    failed = after.get("send_failed", 0) - before.get("send_failed", 0)
    return failed, detected, late, paused


def nothing_due(stack: Stack, label: str, interval: float, rng: random.Random) -> float:
    """Seconds from the revoke to the campaign showing as paused, nothing being due."""
    address = f"idle-{label}@gmail.test"
    mailbox_id = stack.link(address)
    campaign_id = stack.campaign(mailbox_id, 3, start_delay=24 * 60)
    time.sleep(1.5)  # the dispatcher reads a newly watched mailbox once; let it finish
    time.sleep(rng.uniform(0, interval))  # a random moment in the check cycle
    revoked_at = time.time()
    stack.revoke(address)
    wait_until(
        lambda: status_is(stack, f"/campaigns/{campaign_id}", "paused"),
        3 * interval + 60,
        "the campaign to pause",
        stack.procs,
        step=0.02,
    )
    return time.time() - revoked_at


def run(profile: Profile, lab: Lab) -> Section:
    figures, notes = [], []
    for name, label, stack in (
        ("(a) one `sendwell serve` on SQLite", "sqlite", lab.sqlite_serve()),
        ("(a) two `sendwell worker` on PostgreSQL", "postgres", lab.postgres_workers()),
    ):
        failed, seconds = [], []
        for index in range(profile.detection_trials):
            count, detected, late, paused = while_sending(stack, f"{label}-{index}")
            failed.append(float(count))
            seconds.append(detected)
            if late:
                notes.append(f"{name}: {late} sends accepted after the revoke (trial {index}).")
            if not paused:
                notes.append(f"{name}: the campaign was not paused (trial {index}).")
        figures += [
            Figure(
                GROUP,
                f"{name}: failed send attempts before reauth_required",
                "attempts",
                failed,
                summary="max",
                target="≤ 1",
                met=max(failed) <= 1,
                note=f"{len(failed)} trials; counted by the sandbox",
                digits=0,
            ),
            Figure(
                GROUP,
                f"{name}: revoke → reauth_required",
                "s",
                seconds,
                note="observed through the API, polled every 20 ms",
                digits=3,
            ),
        ]
    interval = profile.health_check_minutes * 60
    idle = lab.stack(
        "sqlite-health",
        "sqlite",
        dispatcher=True,
        SENDWELL_HEALTH_CHECK_MINUTES=str(profile.health_check_minutes),
        SENDWELL_INBOUND_POLL_SECONDS="3600",
    )
    rng = random.Random(11)  # noqa: S311 - moments in the cycle, not secrets
    waits = [nothing_due(idle, str(i), interval, rng) for i in range(profile.detection_trials)]
    shares = [wait / interval for wait in waits]
    lab.close("sqlite-health")
    figures += [
        Figure(
            GROUP,
            f"(b) nothing due, `sendwell serve` on SQLite: revoke → paused "
            f"(interval {interval:g} s)",
            "s",
            waits,
            note=f"{len(waits)} trials at random moments of the cycle",
            digits=2,
        ),
        Figure(
            GROUP,
            "(b) the same, as a share of the interval",
            "x interval",
            shares,
            summary="max",
            target="≤ 1 interval",
            met=max(shares) <= 1,
            versus="anchor: the interval",
            digits=2,
        ),
    ]
    return Section(
        GROUP,
        "(a) A campaign of 1,000 recipients sends with pacing off; after 10 messages the grant "
        "is revoked in the sandbox (`/sandbox/admin/revoke`). The sandbox counts every answer "
        "to a send request; failed ones between the revoke and one second after the mailbox "
        "shows reauth_required are the failed attempts. (b) A separate `sendwell serve` with "
        f"SENDWELL_HEALTH_CHECK_MINUTES={profile.health_check_minutes:g} and inbound reading "
        "set to hourly, so only the periodic check can notice; a started campaign whose first "
        "step is due in a day; the revoke happens at a random moment of the check cycle.",
        figures,
        notes,
    )
