"""The five reliability scenarios; each returns what was due, what arrived and what was done.

1. PostgreSQL (a private cluster), several `sendwell worker`: random SIGKILLs with restarts,
   one `pg_terminate_backend`, one `pg_ctl restart`.
2. SQLite, one `sendwell serve` sending: SIGKILLed at random moments and started again.
3. PostgreSQL with sandbox send faults mixed in and a grant revoked and relinked mid-run.
4. PostgreSQL, pause and resume hammered from many API clients at once while sending.
5. PostgreSQL, Microsoft mailboxes only: Sent copies that appear seconds after the 202 and
   carry no custom headers, with send faults and worker SIGKILLs.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from bench.common import BenchError
from bench.stack import Database, Processes, Stack, database

from chaos.cluster import Cluster
from chaos.rig import SANDBOX_TIMEOUT_SECONDS, SETTINGS, Failover, Rig, Tally
from sendwell import migrate
from sendwell.db import make_engine

SEND_FAULTS = ("drop_after_accept", "timeout", "server_error", "rate_limit")
# Google answers a rate limit with a 30 s wait: rarer than the others, or a run stalls.
FAULT_WEIGHTS = (4, 3, 3, 1)
# Faults are queued only for campaigns with less than this share of their messages sent.
FAULTS_UNTIL = 0.7
# Graph's: a 503 with Retry-After 1 and a 429 whose Retry-After has a fraction.
MICROSOFT_FAULTS = ("drop_after_accept", "timeout", "server_error", "rate_limit_fractional")
MICROSOFT_WEIGHTS = (4, 3, 2, 1)
# Seconds after the 202 before a mailbox's copy shows in Sent Items (one value per mailbox).
SENT_COPY_DELAY = (1.0, 3.0)


@dataclass(frozen=True)
class Profile:
    """Sizes: the full run (`make chaos`) or a quick one (`--quick`, while developing)."""

    quick: bool
    mailboxes: int
    recipients: int
    steps: int
    kills: int
    # Further sends (a random number in this range) between two worker kills.
    kill_every: tuple[int, int]
    workers: int
    sqlite_mailboxes: int
    sqlite_recipients: int
    sqlite_kills: int
    fault_mailboxes: int
    fault_recipients: int
    faults: int
    hammer_recipients: int
    hammer_clients: int
    hammer_seconds: float
    microsoft_mailboxes: int
    microsoft_recipients: int
    microsoft_steps: int
    microsoft_faults: int
    settle_seconds: float = 300

    @classmethod
    def full(cls) -> Profile:
        return cls(
            quick=False,
            mailboxes=12,
            recipients=250,
            steps=2,
            kills=40,
            kill_every=(60, 180),
            workers=3,
            sqlite_mailboxes=6,
            sqlite_recipients=50,
            sqlite_kills=8,
            fault_mailboxes=4,
            fault_recipients=200,
            faults=48,
            hammer_recipients=250,
            hammer_clients=12,
            hammer_seconds=20,
            microsoft_mailboxes=4,
            microsoft_recipients=120,
            microsoft_steps=3,
            microsoft_faults=40,
        )

    @classmethod
    def short(cls) -> Profile:
        return cls(
            quick=True,
            mailboxes=3,
            recipients=100,
            steps=2,
            kills=6,
            kill_every=(30, 90),
            workers=2,
            sqlite_mailboxes=2,
            sqlite_recipients=50,
            sqlite_kills=3,
            fault_mailboxes=2,
            fault_recipients=60,
            faults=12,
            hammer_recipients=100,
            hammer_clients=6,
            hammer_seconds=8,
            microsoft_mailboxes=2,
            microsoft_recipients=30,
            microsoft_steps=3,
            microsoft_faults=10,
        )


@dataclass
class Result:
    """One scenario's figures and how they were obtained."""

    name: str
    backend: str
    method: str
    tally: Tally = field(default_factory=Tally)
    kills: int = 0
    restarts: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    completed: bool = False
    failed_recipients: int = 0
    failover: Failover = field(default_factory=Failover)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        t = self.tally
        return (
            self.completed
            and not self.problems
            and t.lost == t.duplicated == t.duplicated_tags == t.unexpected == t.unthreaded == 0
        )

    def finish(self, rig: Rig, began: float, completed: bool) -> None:
        self.completed = completed
        self.tally = rig.tally()
        self.kills = rig.kills
        self.restarts = {**self.restarts, **dict(rig.restarts)}
        self.faults = {**self.faults, **dict(rig.faults)}
        self.failed_recipients = rig.failed_recipients()
        self.failover = rig.failover()
        self.seconds = time.monotonic() - began
        if not completed:
            self.problems.append(f"not every campaign completed: {rig.statuses()}")
        self.problems += self.tally.examples
        self.notes.append(
            f"{self.tally.follow_ups - self.tally.unthreaded} of {self.tally.follow_ups} "
            "follow-ups threaded as received: In-Reply-To the previous step's Message-ID, "
            "References the whole thread, the thread's subject in reply form"
        )
        if self.tally.untagged:
            self.notes.append(
                f"{self.tally.untagged} messages arrived without the X-Sendwell-Send-Id tag "
                "(dropped by the host); counted by (recipient, step) only"
            )
        self.problems += [f"unexpected exit: {line}" for line in rig.unexpected_exits]
        if self.failed_recipients:
            self.notes.append(f"{self.failed_recipients} recipients failed (the engine gave up)")
        if self.failover.seconds or self.failover.idle:
            self.notes.append(
                f"failover, from a SIGKILL (or the mailbox's next allowed send, if later) to "
                f"the next send by another worker from each mailbox the killed process was "
                f"sending for: {self.failover.summary()}"
                + (
                    f"; {self.failover.idle} such mailboxes had nothing left to send"
                    if self.failover.idle
                    else ""
                )
            )
            self.notes.append(
                "taken over (from a SIGKILL to another worker's `workers_gone` for the "
                "mailbox; a later first send waited for something else: a fault queued for "
                "it, or a send the dead worker had in flight still to be settled): "
                f"{self.failover.taken_summary()}"
            )


@contextmanager
def postgres_stack(cluster: Cluster, name: str, folder: Path, workers: int) -> Iterator[Stack]:
    """The sandbox, `sendwell serve --no-dispatcher` and workers on a database of the
    private cluster."""
    folder.mkdir(parents=True, exist_ok=True)
    url = cluster.create_database(name)
    engine = make_engine(url)
    procs = Processes(folder)
    try:
        migrate.upgrade(engine)
        running = Stack(Database("postgresql", url, engine), folder, procs, **SETTINGS)
        try:
            running.start(dispatcher=False)
            running.start_workers(workers)
            yield running
        finally:
            running.api.close()
            procs.stop_all()
    finally:
        engine.dispose()


@contextmanager
def sqlite_stack(folder: Path) -> Iterator[Stack]:
    """The sandbox and one `sendwell serve` that sends, on a SQLite file."""
    folder.mkdir(parents=True, exist_ok=True)
    procs = Processes(folder)
    with database("sqlite", folder) as db:
        running = Stack(db, folder, procs, **SETTINGS)
        try:
            running.start(dispatcher=True)
            yield running
        finally:
            running.api.close()
            procs.stop_all()


def address(prefix: str, index: int) -> str:
    """Every third mailbox is a Microsoft one, the others Google."""
    return (
        f"{prefix}-{index}@chaos.outlook.test" if index % 3 == 2 else f"{prefix}-{index}@gmail.test"
    )


def postgres_kills(profile: Profile, cluster: Cluster, folder: Path, seed: int) -> Result:
    result = Result(
        "1. Workers killed, PostgreSQL restarted",
        f"PostgreSQL {cluster.version().split()[0]} (private cluster), {profile.workers} workers",
        f"{profile.mailboxes} mailboxes, one {profile.steps}-step campaign each "
        f"({profile.recipients} recipients), {profile.workers} `sendwell worker` processes "
        f"beside `sendwell serve --no-dispatcher`. After a random {profile.kill_every[0]}-"
        f"{profile.kill_every[1]} further sends (or 1.5-6 s when sending stalls) a random "
        "worker is SIGKILLed and a new one started at once (a kill waits until some worker "
        "is sending, then may hit one still starting). After a third of the kills one "
        "backend of the database is cut with `pg_terminate_backend`; after two thirds the "
        "cluster is restarted with `pg_ctl restart`.",
    )
    began = time.monotonic()
    database = "chaos_kills"
    with postgres_stack(cluster, database, folder, profile.workers) as running:
        rig = Rig(running, seed)
        for index in range(profile.mailboxes):
            mailbox = address("kills", index)
            rig.campaign(rig.link(mailbox), mailbox, profile.recipients, profile.steps)
        rig.start_all()
        arrived_at_kill: list[int] = []
        while rig.kills < profile.kills:
            arrived_at_kill.append(rig.moment(profile.kill_every, (1.5, 6.0)))
            rig.kill_random("worker")
            rig.start_worker()
            if rig.kills == profile.kills // 3:
                cut = cluster.terminate_backend(database)
                result.faults["pg_terminate_backend"] = 1
                result.notes.append(f"pg_terminate_backend cut backend {cut}")
            if rig.kills == 2 * profile.kills // 3:
                cluster.restart()
                result.restarts["PostgreSQL"] = 1
        result.notes.append(kill_moments(arrived_at_kill, rig.due))
        result.finish(rig, began, rig.wait_completed(profile.settle_seconds))
    return result


def sqlite_serve_kills(profile: Profile, folder: Path, seed: int) -> Result:
    result = Result(
        "2. `sendwell serve` killed on SQLite",
        "SQLite, one `sendwell serve` sending",
        f"{profile.sqlite_mailboxes} mailboxes, one 2-step campaign each "
        f"({profile.sqlite_recipients} recipients), sent by the dispatcher inside one "
        "`sendwell serve` on SQLite. After a random 20-60 further sends (or 3-12 s when "
        "sending stalls) the server is SIGKILLed and started again on the same port and "
        "database; the driver's API calls wait for it.",
    )
    began = time.monotonic()
    with sqlite_stack(folder) as running:
        rig = Rig(running, seed)
        for index in range(profile.sqlite_mailboxes):
            mailbox = address("serve", index)
            rig.campaign(rig.link(mailbox), mailbox, profile.sqlite_recipients, 2)
        rig.start_all()
        arrived_at_kill: list[int] = []
        while rig.kills < profile.sqlite_kills:
            arrived_at_kill.append(rig.moment((20, 60), (3.0, 12.0)))
            rig.kill_random("server")
            rig.start_server()
        result.notes.append(kill_moments(arrived_at_kill, rig.due))
        result.finish(rig, began, rig.wait_completed(profile.settle_seconds))
    return result


def kill_moments(arrived: list[int], due: int) -> str:
    during = sum(1 for count in arrived if count < due)
    return (
        f"{during} of {len(arrived)} kills came while messages were still due; sends the "
        f"sandbox had accepted at each kill: {', '.join(map(str, arrived))} (of {due})"
    )


def faults_and_relink(profile: Profile, cluster: Cluster, folder: Path, seed: int) -> Result:
    result = Result(
        "3. Send faults, a grant revoked and relinked",
        "PostgreSQL (private cluster), 2 workers",
        f"{profile.fault_mailboxes} mailboxes, one 2-step campaign each "
        f"({profile.fault_recipients} recipients), two workers. Every 0.3-1.2 s one send "
        "fault is queued at the sandbox for a random mailbox whose campaign has less than "
        f"{FAULTS_UNTIL:.0%} of its messages sent (drop_after_accept: stored but "
        "the answer cut; timeout: held "
        f"{SANDBOX_TIMEOUT_SECONDS:.0f} s, longer than Sendwell waits, and not stored; "
        "server_error: 500; rate_limit: 429 with a retry time); every tenth fault a worker "
        "is also SIGKILLed and replaced. A third of the way in, one mailbox's grant is "
        "revoked at the sandbox; once Sendwell has marked it for reauthentication (pausing "
        "its campaign) it is linked again through the sign-in and consent pages and its "
        "campaigns resumed with `POST /api/v1/mailboxes/{id}/resume-campaigns`.",
    )
    began = time.monotonic()
    with postgres_stack(cluster, "chaos_faults", folder, 2) as running:
        rig = Rig(running, seed)
        rig.sandbox("timeout", {"seconds": SANDBOX_TIMEOUT_SECONDS})
        mailboxes = {}
        for index in range(profile.fault_mailboxes):
            mailbox = address("faults", index)
            mailboxes[mailbox] = rig.link(mailbox)
            rig.campaign(mailboxes[mailbox], mailbox, profile.fault_recipients, 2)
        rig.start_all()

        def revoke_a_third_of_the_way(injected: int) -> None:
            if injected == profile.faults // 3:
                # A mailbox with sends still due: one whose campaign has finished sends and
                # reads nothing more, and only the periodic health check would notice.
                busy = sorted(busy_mailboxes(rig))
                revoked = busy[0] if busy else "faults-0@gmail.test"
                result.notes.append(revoke_and_relink(rig, revoked, mailboxes))
                rig.faults["revoke + relink"] += 1

        inject_faults(
            rig,
            result,
            total=profile.faults,
            kinds=(SEND_FAULTS, FAULT_WEIGHTS),
            kill_every=10,
            after_each=revoke_a_third_of_the_way,
        )
        result.finish(rig, began, rig.wait_completed(profile.settle_seconds))
    return result


def inject_faults(
    rig: Rig,
    result: Result,
    *,
    total: int,
    kinds: tuple[tuple[str, ...], tuple[int, ...]],
    kill_every: int,
    after_each: Callable[[int], None] | None = None,
) -> None:
    """Every 0.3-1.2 s one send fault (of `kinds`, by weight) queued for a random busy
    mailbox; every `kill_every`th fault a worker is also SIGKILLed and replaced."""
    injected = 0
    while injected < total:
        rig.pause(0.3, 1.2)
        candidates = busy_mailboxes(rig)
        if not candidates:
            result.notes.append(
                f"faults stopped after {injected}: every campaign was past "
                f"{FAULTS_UNTIL:.0%} of its sends"
            )
            return
        fault = rig.rng.choices(*kinds)[0]
        rig.sandbox("faults", {"mailbox": rig.rng.choice(candidates), "fault": fault, "count": 1})
        rig.faults[fault] += 1
        injected += 1
        if injected % kill_every == 0:
            rig.kill_random("worker")
            rig.start_worker()
        if after_each is not None:
            after_each(injected)


def busy_mailboxes(rig: Rig) -> list[str]:
    """Mailboxes whose campaign has most of its sends still to go. A fault is queued at the
    sandbox for the mailbox's next send, so one queued near the end would hit the last few
    recipients over and over until the engine gives up on them (after five attempts)."""
    sent = {int(c["id"]): int(c["counts"]["sent"]) for c in rig.call("GET", "/campaigns")}
    return [
        plan.address
        for plan in rig.plans.values()
        if sent.get(plan.campaign_id, 0) < FAULTS_UNTIL * len(plan.emails) * plan.steps
    ]


def revoke_and_relink(rig: Rig, mailbox: str, ids: dict[str, int]) -> str:
    """Revoke the grant, wait for Sendwell to notice, link again, resume: what happened."""
    began = time.monotonic()
    rig.sandbox("revoke", {"mailbox": mailbox})

    def status() -> str:
        found = [m for m in rig.call("GET", "/mailboxes") if int(m["id"]) == ids[mailbox]]
        return str(found[0]["status"]) if found else "gone"

    rig.wait(lambda: status() == "reauth_required", 120, f"{mailbox} to need reauthentication")
    noticed = time.monotonic() - began
    relinked = rig.link(mailbox)
    if relinked != ids[mailbox]:
        raise BenchError(f"relinking {mailbox} made a new mailbox {relinked}")
    resumed = rig.call("POST", f"/mailboxes/{relinked}/resume-campaigns")
    return (
        f"{mailbox}: revoked; marked reauth_required after {noticed:.1f} s; relinked as the "
        f"same mailbox; resume-campaigns resumed {resumed}"
    )


@dataclass
class Request:
    kind: str
    campaign_id: int
    sent_at: float
    returned_at: float
    status: int


def pause_resume_hammer(profile: Profile, cluster: Cluster, folder: Path, seed: int) -> Result:
    result = Result(
        "4. Pause and resume hammered",
        "PostgreSQL (private cluster), 2 workers",
        f"Two mailboxes, one 2-step campaign each ({profile.hammer_recipients} recipients), "
        f"two workers. For {profile.hammer_seconds:.0f} s, {profile.hammer_clients} API "
        "clients in threads each post pause or resume (at random) for a random campaign, "
        "0-0.2 s apart; then every campaign is resumed and sent to the end. Checked: after "
        "each pause answered 200 while the campaign's last status change (its events) was "
        "that pause, nothing of that campaign arrived in the sandbox until the next resume "
        "was requested or took effect; the events alternate (no paused after paused, no "
        "resumed after resumed); one resumed/paused event per 200 answer.",
    )
    began = time.monotonic()
    with postgres_stack(cluster, "chaos_hammer", folder, 2) as running:
        rig = Rig(running, seed)
        campaign_ids = []
        for index in range(2):
            mailbox = address("hammer", index)
            campaign_ids.append(
                rig.campaign(rig.link(mailbox), mailbox, profile.hammer_recipients, 2)
            )
        rig.start_all()
        requests: list[Request] = []
        lock = threading.Lock()
        end = time.monotonic() + profile.hammer_seconds

        def client(number: int) -> None:
            chooser = random.Random(seed * 1000 + number)  # noqa: S311 - not secrets
            with httpx.Client(
                base_url=f"{running.base_url}/api/v1",
                headers={"Authorization": f"Bearer {running.token}"},
                timeout=120,
            ) as http:
                while time.monotonic() < end:
                    campaign_id = chooser.choice(campaign_ids)
                    kind = chooser.choice(("pause", "resume"))
                    sent_at = time.time()
                    answer = http.post(f"/campaigns/{campaign_id}/{kind}")
                    with lock:
                        requests.append(
                            Request(kind, campaign_id, sent_at, time.time(), answer.status_code)
                        )
                    time.sleep(chooser.uniform(0, 0.2))

        threads = [
            threading.Thread(target=client, args=(n,), daemon=True)
            for n in range(profile.hammer_clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=profile.hammer_seconds + 180)
        for campaign_id in campaign_ids:
            sent_at = time.time()
            answer = running.api.post(f"/campaigns/{campaign_id}/resume")
            requests.append(
                Request("resume", campaign_id, sent_at, time.time(), answer.status_code)
            )
        completed = rig.wait_completed(profile.settle_seconds)
        result.finish(rig, began, completed)
        statuses = Counter(f"{r.kind} {r.status}" for r in requests)
        result.notes.append(f"API answers: {dict(sorted(statuses.items()))}")
        result.faults = {"pause/resume requests": len(requests)}
        check_pauses(rig, requests, result)
    return result


def check_pauses(rig: Rig, requests: list[Request], result: Result) -> None:
    """No arrival inside a pause; events that alternate; one event per effective request."""
    arrivals = rig.arrivals()
    windows = 0
    for campaign_id in rig.plans:
        transitions = [
            e
            for e in rig.events(campaign_id)
            if e[1] in ("started", "paused", "resumed", "completed")
        ]
        state = "draft"
        allowed = {
            "started": {"draft"},
            "paused": {"active"},
            "resumed": {"paused"},
            "completed": {"active"},
        }
        after = {"started": "active", "paused": "paused", "resumed": "active"}
        for at, kind, _by_user in transitions:
            if state not in allowed[kind]:
                result.problems.append(f"campaign {campaign_id}: '{kind}' while {state} at {at}")
            state = after.get(kind, "completed")
        mine = [r for r in requests if r.campaign_id == campaign_id]
        for kind in ("pause", "resume"):
            answered = sum(1 for r in mine if r.kind == kind and r.status == 200)
            recorded = sum(1 for e in transitions if e[1] == f"{kind}d" and e[2])
            if answered != recorded:
                result.problems.append(
                    f"campaign {campaign_id}: {answered} {kind} requests answered 200 but "
                    f"{recorded} '{kind}d' events"
                )
        mine_arrivals = sorted(a.at for a in arrivals if a.campaign_id == campaign_id)
        for pause in (r for r in mine if r.kind == "pause" and r.status == 200):
            before = [e for e in transitions if e[0] <= pause.returned_at]
            if not before or before[-1][1] != "paused":
                continue  # a resume took effect before this pause answered
            ends = [r.sent_at for r in mine if r.kind == "resume" and r.sent_at > pause.returned_at]
            ends += [e[0] for e in transitions if e[1] == "resumed" and e[0] > pause.returned_at]
            until = min(ends, default=float("inf"))
            windows += 1
            inside = [at for at in mine_arrivals if pause.returned_at < at < until]
            if inside:
                result.problems.append(
                    f"campaign {campaign_id}: {len(inside)} messages arrived after a pause "
                    f"answered at {pause.returned_at:.3f} and before the next resume"
                )
    result.notes.append(f"{windows} pause windows checked against the sandbox's arrival times")


def microsoft_only(profile: Profile, cluster: Cluster, folder: Path, seed: int) -> Result:
    result = Result(
        "5. Microsoft: late Sent copies without headers, faults",
        "PostgreSQL (private cluster), 2 workers",
        f"{profile.microsoft_mailboxes} Microsoft 365 mailboxes (`*.outlook.test`), one "
        f"{profile.microsoft_steps}-step campaign each ({profile.microsoft_recipients} "
        "recipients; every follow-up a reply in the first email's thread), two workers. Each "
        "mailbox behaves as Graph does: `sendMail` answers 202 and the copy shows in Sent "
        f"Items {SENT_COPY_DELAY[0]:.0f}-{SENT_COPY_DELAY[1]:.0f} s later (one delay per "
        "mailbox), without Sendwell's `X-Sendwell-Send-Id` header, so a send whose answer "
        "was lost is found by recipient, subject and time, and a follow-up waits for its "
        "thread's last Message-ID. (The sandbox's per-minute carry-over is set out of the "
        "way: it only delays copies further.) Every 0.3-1.2 s one fault is queued for a "
        f"random mailbox whose campaign has less than {FAULTS_UNTIL:.0%} of its messages "
        "sent (drop_after_accept: stored but the answer cut; timeout: held "
        f"{SANDBOX_TIMEOUT_SECONDS:.0f} s, longer than Sendwell waits, and not stored; "
        "server_error: 503 with Retry-After 1; rate_limit_fractional: 429 with Retry-After "
        "2.128); every eighth fault a worker is also SIGKILLed and replaced. A message's "
        "step is told by its thread as received (In-Reply-To), not by the tag.",
    )
    began = time.monotonic()
    with postgres_stack(cluster, "chaos_microsoft", folder, 2) as running:
        rig = Rig(running, seed)
        rig.sandbox("timeout", {"seconds": SANDBOX_TIMEOUT_SECONDS})
        delays = []
        for index in range(profile.microsoft_mailboxes):
            mailbox = f"chaos-{index}@contoso.outlook.test"
            delay = round(rig.rng.uniform(*SENT_COPY_DELAY), 1)
            delays.append(f"{delay:.1f} s")
            mailbox_id = rig.link(mailbox)
            rig.sandbox(
                "mailbox-settings",
                {
                    "mailbox": mailbox,
                    "sent_copy_delay": delay,
                    "drop_custom_headers": True,
                },
            )
            rig.campaign(mailbox_id, mailbox, profile.microsoft_recipients, profile.microsoft_steps)
        result.notes.append(f"Sent copy delays per mailbox: {', '.join(delays)}")
        rig.start_all()
        inject_faults(
            rig,
            result,
            total=profile.microsoft_faults,
            kinds=(MICROSOFT_FAULTS, MICROSOFT_WEIGHTS),
            kill_every=8,
        )
        result.finish(rig, began, rig.wait_completed(profile.settle_seconds))
    return result
