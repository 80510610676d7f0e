"""2. Resume latency: from the resume API's answer to the first message in the sandbox.

One campaign with plenty of recipients sends with pacing off. Each trial pauses it through
the API (which answers once nothing is in flight), leaves the dispatchers idle for a moment,
resumes it, and polls the sandbox until a new message is there. The latency is the sandbox's
arrival time of that message minus the moment the resume response was received (same
clock); a negative value means the message arrived before the response did.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from bench.common import Figure, Profile, Section, percentile
from bench.stack import Lab, Stack, parse_moment, wait_until

GROUP = "2. Resume latency"
IDLE_SECONDS = (0.3, 0.8)
# Recipients per trial, with room to spare: between a trial's resume and the next pause the
# engine sends on at full speed (a few dozen messages), and the campaign must not run out.
MESSAGES_PER_TRIAL = 80


def trials(stack: Stack, label: str, count: int) -> tuple[list[float], list[float], int]:
    """(latency from response, latency from request, messages that arrived while paused)."""
    address = f"resume-{label}@gmail.test"
    mailbox_id = stack.link(address)
    campaign_id = stack.campaign(mailbox_id, count * MESSAGES_PER_TRIAL + 50)
    wait_until(lambda: len(stack.sent(address)) > 0, 60, "the first message", stack.procs)
    rng = random.Random(7)  # noqa: S311 - idle times, not secrets
    from_response, from_request, leaked = [], [], 0
    for _ in range(count):
        stack.call("POST", f"/campaigns/{campaign_id}/pause")
        at_pause = len(stack.sent(address))
        time.sleep(rng.uniform(*IDLE_SECONDS))
        before = len(stack.sent(address))
        leaked += before - at_pause
        requested = time.time()
        stack.call("POST", f"/campaigns/{campaign_id}/resume")
        answered = time.time()
        wait_until(more_than(stack, address, before), 30, "a message after resume")
        first = parse_moment(stack.sent(address)[before]["sent_at"])
        from_response.append(first - answered)
        from_request.append(first - requested)
    stack.call("POST", f"/campaigns/{campaign_id}/pause")
    return from_response, from_request, leaked


def more_than(stack: Stack, address: str, count: int) -> Callable[[], bool]:
    return lambda: len(stack.sent(address)) > count


def run(profile: Profile, lab: Lab) -> Section:
    figures, notes = [], []
    for name, label, stack in (
        ("one `sendwell serve` on SQLite", "sqlite", lab.sqlite_serve()),
        ("two `sendwell worker` on PostgreSQL", "postgres", lab.postgres_workers()),
    ):
        response, request, leaked = trials(stack, label, profile.resume_trials)
        p99 = percentile(response, 99)
        figures += [
            Figure(
                GROUP,
                f"{name}, from response",
                "s",
                response,
                summary="p50",
                note=f"{len(response)} trials",
                digits=3,
            ),
            Figure(
                GROUP,
                f"{name}, from response",
                "s",
                response,
                summary="p99",
                target="p99 < 2 s",
                met=p99 < 2,
                versus=f"{p99 / 2:.2f}x target; the article allows 20 min",
                note=f"{len(response)} trials",
                digits=3,
            ),
        ]
        figures.append(
            Figure(
                GROUP,
                f"{name}, from request sent",
                "s",
                request,
                summary="p99",
                note="includes the resume request itself",
                digits=3,
            )
        )
        if leaked:
            notes.append(f"{name}: {leaked} messages arrived after a pause had answered.")
    return Section(
        GROUP,
        "Per trial: pause via the API, stay paused 0.3-0.8 s (random) so the dispatchers are "
        "idle, resume via the API, then poll the sandbox every 50 ms; the latency is the "
        "first new message's arrival time in the sandbox minus the time the resume response "
        "was received. Pacing off. With ~30 trials p99 is close to the maximum.",
        figures,
        notes,
    )
