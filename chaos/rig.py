"""A running stack under attack: campaigns to send, processes to kill and restart, and the
count of what the sandbox received against what was due.

Built on `bench.stack`: the sandbox on its own port, `sendwell serve` and `sendwell worker`
as real processes, mailboxes linked through the sandbox's sign-in and consent pages,
campaigns made, started, paused and resumed through the JSON API.
"""

from __future__ import annotations

import json
import math
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

import httpx
from bench.common import BenchError
from bench.stack import Stack, answers, parse_moment
from sqlalchemy import select

from sendwell.models import CampaignEvent, Enrollment, LedgerStatus, Mailbox, SendLedger
from sendwell.providers.base import TAG_HEADER

# Short leases and a short settle grace, so a killed process's work comes back within a
# minute; the timeout fault holds a send longer than Sendwell waits for one.
SETTINGS = {
    "SENDWELL_PROVIDER_TIMEOUT_SECONDS": "3",
    "SENDWELL_SETTLE_GRACE_SECONDS": "5",
    "SENDWELL_INBOUND_POLL_SECONDS": "10",
    "SENDWELL_LOG_LEVEL": "WARNING",
    # The runs send with pacing off to go fast; Exchange's per-minute rate, which Sendwell
    # keeps by default, is lifted here and at the sandbox alike (see `Rig.link`).
    "SENDWELL_MICROSOFT_MIN_SEND_SECONDS": "0",
    # The sandbox files copies at most 3 s late and, lifted as above, carries none over: a
    # send whose answer was lost is retried after a short lag instead of Graph's ten minutes.
    "SENDWELL_MICROSOFT_SENT_COPY_LAG_SECONDS": "20",
}
# What Exchange takes a minute at the sandbox while the runs send at full speed.
FAST_EXCHANGE = {"messages_per_minute": 10_000}
SANDBOX_TIMEOUT_SECONDS = 5.0
# How long a kill waits for some worker to be sending before it strikes anyway.
STARTUP_WAIT = 60.0
FIRST_SUBJECT = "A question for {{ first_name }}"


def steps(count: int) -> list[dict[str, Any]]:
    """A first email and its follow-ups, each a reply in its thread (so without a subject of
    its own), due as soon as the one before went."""
    return [
        {
            "subject": FIRST_SUBJECT if n == 1 else "",
            "body": f"Hi {{{{ first_name }}}}, message {n} of {count}.",
            "delay_minutes": 0,
        }
        for n in range(1, count + 1)
    ]


@dataclass
class Plan:
    """One campaign: its mailbox and what it owes each recipient."""

    campaign_id: int
    address: str
    emails: list[str]
    steps: int


@dataclass
class Tally:
    """What arrived in the sandbox against what was due."""

    due: int = 0
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    duplicated_tags: int = 0
    unexpected: int = 0
    # Arrived without Sendwell's tag: the host dropped custom headers (Exchange may).
    untagged: int = 0
    # Follow-ups whose thread was checked, and those not threaded as the recipient sees it.
    follow_ups: int = 0
    unthreaded: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class Takeover:
    """A process SIGKILLed while sending: when, the workers it ran, and the mailboxes it
    held the sender lease of at that moment, each with the moment its pacing allowed its next
    send (a host's rate limit or retry time may hold a mailbox past the kill)."""

    at: float
    workers: set[str]
    mailboxes: dict[int, float]


def nearest_rank(values: list[float], share: float) -> float:
    ranked = sorted(values)
    return ranked[max(0, math.ceil(share * len(ranked)) - 1)] if ranked else 0.0


def spread(values: list[float], empty: str) -> str:
    """p50, p99 (nearest rank) and max of some mailboxes' seconds, or `empty`."""
    if not values:
        return empty
    return (
        f"p50 {nearest_rank(values, 0.5):.2f} s, p99 {nearest_rank(values, 0.99):.2f} s, "
        f"max {max(values):.2f} s ({len(values)} mailboxes)"
    )


@dataclass
class Failover:
    """Seconds from each kill (or from the moment the mailbox's pacing allowed a send, when
    later) to the next send from each mailbox the dead process held, by another worker; and
    the held mailboxes that had nothing left to send.

    `taken`: seconds from each kill to the moment another worker took each such mailbox over
    (its `workers_gone` log line names the dead worker and the mailbox). The next send can
    come later than that for reasons of its own: a fault the scenario queued hits it, or the
    mailbox's only due step waits for a send the dead worker had in flight to be settled."""

    seconds: list[float] = field(default_factory=list)
    idle: int = 0
    taken: list[float] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        """Nearest rank."""
        return nearest_rank(self.seconds, share)

    def taken_summary(self) -> str:
        return spread(self.taken, "none seen")

    def summary(self) -> str:
        return spread(self.seconds, "none measured")


@dataclass
class Arrival:
    campaign_id: int
    email: str
    # The message's place in its thread as received (1 = the first email), 0 when unknown.
    step: int
    tag: str
    at: float
    # Why its thread is not intact; empty when it is.
    threading: str = ""


def header(message: dict[str, Any], name: str) -> str:
    """One header of a sandbox message as the recipient received it ("" when absent)."""
    for key, value in message["headers"].items():
        if key.lower() == name.lower():
            return str(value).strip()
    return ""


def recipient(message: dict[str, Any]) -> str:
    return parseaddr(str(message["to"][0]))[1].lower()


def thread_places(messages: list[dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """Each message's step, told by its thread alone (no tag or subject needed, as a host
    may drop the tag): a message with no In-Reply-To begins a thread, a follow-up is one
    more than the message its In-Reply-To names. Also what is wrong with its threading: a
    follow-up must answer a message sent to the same recipient, carry the whole thread in
    References, and keep the thread's subject in reply form."""
    by_id = {header(m, "Message-ID"): m for m in messages}
    places: dict[str, tuple[int, str]] = {}

    def chain(message: dict[str, Any]) -> list[dict[str, Any]]:
        found = [message]
        while (parent := by_id.get(header(found[-1], "In-Reply-To"))) is not None:
            found.append(parent)
            if len(found) > len(messages):
                break  # a loop of Message-IDs; reported below as a broken thread
        return found[::-1]

    for message in messages:
        answers = header(message, "In-Reply-To")
        if not answers:
            reply = str(message["subject"])[:3].casefold() == "re:"
            places[message["id"]] = (0, "a follow-up with no In-Reply-To") if reply else (1, "")
            continue
        thread = chain(message)
        root = thread[0]
        if header(root, "In-Reply-To"):
            places[message["id"]] = (0, f"In-Reply-To {answers} names no message sent to them")
            continue
        problems = []
        if {recipient(m) for m in thread} != {recipient(message)}:
            problems.append("its thread has messages to someone else")
        if header(message, "References").split() != [header(m, "Message-ID") for m in thread[:-1]]:
            problems.append("References is not the thread's Message-IDs")
        if str(message["subject"]) != f"Re: {root['subject']}":
            problems.append(f"subject {message['subject']!r} is not the thread's")
        places[message["id"]] = (len(thread), "; ".join(problems))
    return places


class Rig:
    """A stack, its campaigns, and the record of what was done to it."""

    def __init__(self, stack: Stack, seed: int) -> None:
        self.stack = stack
        self.rng = random.Random(seed)  # noqa: S311 - chaos, not secrets
        self.plans: dict[int, Plan] = {}
        self.kills = 0
        self.restarts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.unexpected_exits: list[str] = []
        self.servers = 1
        self.addresses: dict[int, str] = {}
        self.takeovers: list[Takeover] = []

    # -- setting up --------------------------------------------------------------------

    def link(self, address: str) -> int:
        mailbox_id = self.stack.link(address)
        self.addresses[mailbox_id] = address
        if address.endswith("outlook.test"):
            self.sandbox("mailbox-settings", {"mailbox": address, **FAST_EXCHANGE})
        return mailbox_id

    def campaign(self, mailbox_id: int, address: str, recipients: int, step_count: int) -> int:
        """A draft campaign of `recipients` new addresses; started by `start_all`."""
        made = self.call(
            "POST",
            "/campaigns",
            json={
                "name": f"Chaos {address}",
                "mailbox_id": mailbox_id,
                "steps": steps(step_count),
                "start_delay_minutes": 0,
            },
        )
        campaign_id = int(made["id"])
        emails = [f"c{campaign_id}-r{i}@example.com" for i in range(recipients)]
        rows = [{"email": e, "first_name": f"R{i}"} for i, e in enumerate(emails)]
        self.call("POST", f"/campaigns/{campaign_id}/recipients", json={"recipients": rows})
        self.plans[campaign_id] = Plan(campaign_id, address, emails, step_count)
        return campaign_id

    def start_all(self) -> None:
        for campaign_id in self.plans:
            self.call("POST", f"/campaigns/{campaign_id}/start")

    @property
    def due(self) -> int:
        return sum(len(plan.emails) * plan.steps for plan in self.plans.values())

    # -- the API, patient while the server or the database restarts ----------------------

    def call(self, method: str, path: str, *, patience: float = 120, **kwargs: Any) -> Any:
        """An API call retried while the server is down or answers 5xx (a restart)."""
        deadline = time.monotonic() + patience
        while True:
            try:
                response = self.stack.api.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 300:
                    return response.json() if response.content else None
                if response.status_code < 500:
                    raise BenchError(
                        f"{method} {path} answered {response.status_code}: {response.text}"
                    )
                problem = f"{response.status_code}: {response.text[:200]}"
            if time.monotonic() > deadline:
                raise BenchError(f"{method} {path} kept failing: {problem}")
            time.sleep(0.5)

    def sandbox(self, path: str, body: dict[str, Any]) -> None:
        httpx.post(
            f"{self.stack.sandbox_url}/admin/{path}", json=body, timeout=30
        ).raise_for_status()

    def statuses(self) -> dict[int, str]:
        return {
            int(c["id"]): str(c["status"])
            for c in self.call("GET", "/campaigns")
            if int(c["id"]) in self.plans
        }

    # -- processes ----------------------------------------------------------------------

    def live(self, prefix: str) -> list[str]:
        return [
            name
            for name, proc in self.stack.procs.running.items()
            if name.startswith(prefix) and proc.poll() is None
        ]

    def kill(self, name: str) -> None:
        """SIGKILL one process and forget it, noting the mailboxes it was sending for."""
        workers = set(re.findall(r"Worker (\S+) is sending", self.stack.procs.log(name, 10**6)))
        # `sendwell serve` names no worker: on SQLite it is the only one sending.
        held = self.held_mailboxes(workers if name.startswith("worker") else None)
        proc = self.stack.procs.running.pop(name)
        proc.send_signal(signal.SIGKILL)
        at = time.time()
        proc.wait(timeout=30)
        self.kills += 1
        if held:
            self.takeovers.append(
                Takeover(
                    at,
                    {sender for sender, _ in held.values()},
                    {mailbox: max(at, allowed) for mailbox, (_, allowed) in held.items()},
                )
            )

    def held_mailboxes(self, workers: set[str] | None) -> dict[int, tuple[str, float]]:
        """Mailboxes whose sender lease is held now, by these workers (by anyone: None),
        with the holder and when the mailbox's pacing allows its next send."""
        query = select(Mailbox.id, Mailbox.sender, Mailbox.send_not_before).where(
            Mailbox.sender_until.is_not(None)
        )
        if workers is not None:
            query = query.where(Mailbox.sender.in_(workers))
        with self.stack.db.engine.connect() as connection:
            return {
                int(mailbox): (str(sender), allowed.timestamp() if allowed else 0.0)
                for mailbox, sender, allowed in connection.execute(query)
            }

    def sending(self, name: str) -> bool:
        """Whether a worker has begun sending (it says so once started)."""
        return "is sending" in self.stack.procs.log(name, 10**6)

    def kill_random(self, prefix: str) -> str | None:
        """SIGKILL a random live process of the kind. Workers: once at least one of them is
        sending (waiting up to STARTUP_WAIT), so that on a loaded machine, where starting
        takes long, kills do not only ever hit workers that are still starting."""
        if prefix == "worker":
            deadline = time.monotonic() + STARTUP_WAIT
            while time.monotonic() < deadline and not any(
                self.sending(name) for name in self.live(prefix)
            ):
                time.sleep(0.2)
        candidates = self.live(prefix)
        if not candidates:
            return None
        victim = self.rng.choice(candidates)
        self.kill(victim)
        return victim

    def start_worker(self) -> None:
        """One more `sendwell worker`, not waited for: a kill may come during its start."""
        self.stack.workers += 1
        self.stack.procs.start(
            f"worker-{self.stack.workers}", ["-m", "sendwell", "worker"], self.stack.env()
        )
        self.restarts["worker"] += 1

    def start_server(self, *, dispatcher: bool = True) -> None:
        """`sendwell serve` again on the same port, waited for until it answers."""
        self.servers += 1
        args = ["-m", "sendwell", "serve", "--port", str(self.stack.port)]
        self.stack.procs.start(
            f"server-{self.servers}",
            args if dispatcher else [*args, "--no-dispatcher"],
            self.stack.env(),
        )
        self.restarts["server"] += 1
        self.wait(lambda: answers(f"{self.stack.base_url}/healthz"), 90, "sendwell serve")

    def reap(self) -> None:
        """Restart any process that exited without being killed (a fault of its own)."""
        for name, proc in list(self.stack.procs.running.items()):
            if proc.poll() is None:
                continue
            self.unexpected_exits.append(
                f"{name} exited with {proc.returncode}: {self.stack.procs.log(name, 600)}"
            )
            del self.stack.procs.running[name]
            if name.startswith("worker"):
                self.start_worker()
            elif name.startswith("server"):
                args = proc.args if isinstance(proc.args, list) else []
                self.start_server(dispatcher="--no-dispatcher" not in args)
            else:
                raise BenchError(f"{name} exited with {proc.returncode}")

    def wait(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {seconds:.0f} s waiting for {what}")
            time.sleep(0.25)

    def pause(self, low: float, high: float) -> None:
        """Sleep a random moment, restarting whatever died meanwhile."""
        time.sleep(self.rng.uniform(low, high))
        self.reap()

    def accepted(self) -> int:
        """Sends the sandbox has accepted so far (its own count, cheap to read)."""
        return int(self.stack.counts().get("send_ok", 0))

    def moment(self, more: tuple[int, int], seconds: tuple[float, float]) -> int:
        """Wait for a random moment while sending: a random number of further sends, or a
        random time when sending stalls, whichever comes first; returns the sends so far."""
        target = self.accepted() + self.rng.randint(*more)
        deadline = time.monotonic() + self.rng.uniform(*seconds)
        while time.monotonic() < deadline and (count := self.accepted()) < target:
            time.sleep(0.05)
        self.reap()
        return self.accepted() if time.monotonic() >= deadline else count

    # -- the count ----------------------------------------------------------------------

    def wait_completed(self, seconds: float) -> bool:
        """Every campaign Completed (processes kept alive meanwhile); False on timeout."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.reap()
            if set(self.statuses().values()) == {"completed"}:
                time.sleep(2)  # a duplicate sent late would show up now
                return True
            time.sleep(1)
        return False

    def arrivals(self) -> list[Arrival]:
        """Every message of our campaigns in the sandbox's Sent folders."""
        owner = {email: plan.campaign_id for plan in self.plans.values() for email in plan.emails}
        found = []
        for address in sorted({plan.address for plan in self.plans.values()}):
            messages = self.stack.sent(address)
            places = thread_places(messages)
            for message in messages:
                email = recipient(message)
                step, threading = places[message["id"]]
                found.append(
                    Arrival(
                        owner.get(email, 0),
                        email,
                        step,
                        header(message, TAG_HEADER),
                        parse_moment(str(message["sent_at"])),
                        threading,
                    )
                )
        return found

    def tally(self) -> Tally:
        """Arrivals per (recipient, step) against what was due: what a recipient notices,
        whether or not the host kept Sendwell's tag."""
        arrived = self.arrivals()
        due = {
            (email, step)
            for plan in self.plans.values()
            for email in plan.emails
            for step in range(1, plan.steps + 1)
        }
        by_step = Counter((a.email, a.step) for a in arrived)
        by_tag = Counter(a.tag for a in arrived if a.tag)
        lost = sorted(due - set(by_step))
        doubled = sorted(key for key, n in by_step.items() if n > 1)
        unexpected = sorted(set(by_step) - due)
        unthreaded = [a for a in arrived if a.threading]
        examples = [f"lost {e} step {s}" for e, s in lost[:5]]
        examples += [f"sent {by_step[(e, s)]} times: {e} step {s}" for e, s in doubled[:5]]
        examples += [f"not due: {e} step {s}" for e, s in unexpected[:5]]
        examples += [f"thread broken for {a.email}: {a.threading}" for a in unthreaded[:5]]
        return Tally(
            due=len(due),
            sent=len(arrived),
            lost=len(lost),
            duplicated=sum(by_step[key] - 1 for key in doubled),
            duplicated_tags=sum(n - 1 for n in by_tag.values() if n > 1),
            unexpected=len(unexpected),
            untagged=sum(1 for a in arrived if not a.tag),
            follow_ups=sum(1 for a in arrived if a.step != 1),
            unthreaded=len(unthreaded),
            examples=examples,
        )

    def failover(self) -> Failover:
        """For each kill and each mailbox the dead process held: the time until the next
        message from that mailbox arrived that another worker sent (the ledger says which
        worker sent each (recipient, step))."""
        query = (
            select(Enrollment.email, SendLedger.step_position, SendLedger.worker)
            .join(Enrollment, Enrollment.id == SendLedger.enrollment_id)
            .where(SendLedger.status == LedgerStatus.SENT)
        )
        with self.stack.db.engine.connect() as connection:
            sender = {(email, step): worker for email, step, worker in connection.execute(query)}
        sent: dict[str, list[tuple[float, str]]] = {}
        for arrival in self.arrivals():
            plan = self.plans.get(arrival.campaign_id)
            if plan is not None:
                worker = sender.get((arrival.email, arrival.step), "")
                sent.setdefault(plan.address, []).append((arrival.at, worker))
        found = Failover()
        taken_over = self.taken_over()
        for takeover in self.takeovers:
            for mailbox_id, allowed in takeover.mailboxes.items():
                moments = [
                    at
                    for at, gone, mailboxes in taken_over
                    if at > takeover.at and gone & takeover.workers and mailbox_id in mailboxes
                ]
                if moments:
                    found.taken.append(min(moments) - takeover.at)
                later = [
                    at
                    for at, worker in sent.get(self.addresses.get(mailbox_id, ""), [])
                    if at > takeover.at and worker and worker not in takeover.workers
                ]
                if later:
                    found.seconds.append(max(0.0, min(later) - allowed))
                else:
                    found.idle += 1
        return found

    def taken_over(self) -> list[tuple[float, set[str], set[int]]]:
        """Each takeover a worker logged (`workers_gone`, a warning): when, whom it found
        gone, and the mailboxes it took from them."""
        found = []
        for path in sorted(self.stack.procs.folder.glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if '"workers_gone"' not in line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                found.append(
                    (
                        parse_moment(str(event["timestamp"])),
                        set(event.get("gone", [])),
                        {int(m) for m in event.get("mailboxes", [])},
                    )
                )
        return found

    def events(self, campaign_id: int) -> list[tuple[float, str, bool]]:
        """The campaign's whole events log, oldest first: (moment, kind, by a user). Read from
        the database, as the API lists only the newest 200."""
        with self.stack.db.engine.connect() as connection:
            rows = connection.execute(
                select(CampaignEvent.at, CampaignEvent.kind, CampaignEvent.actor_id)
                .where(CampaignEvent.campaign_id == campaign_id)
                .order_by(CampaignEvent.at, CampaignEvent.id)
            ).all()
        return [(at.timestamp(), str(kind), actor is not None) for at, kind, actor in rows]

    def failed_recipients(self) -> int:
        """Recipients the engine gave up on (counted in the campaign, not silently lost)."""
        return sum(
            int(c["counts"]["failed"]) + int(c["counts"]["bounced"])
            for c in self.call("GET", "/campaigns")
            if int(c["id"]) in self.plans
        )
