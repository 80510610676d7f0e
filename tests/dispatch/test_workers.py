"""`sendwell worker` processes against a shared database and the sandbox over real HTTP.

Exactly once across processes: two workers on PostgreSQL share the work through SKIP LOCKED
claims; a worker killed mid-send leaves work the next one settles (found in Sent) or sends
again (not there), never both; `--once` sends what is due and exits.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.message import Message
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from sendwell.db import session_scope
from sendwell.dispatch.engine import SEND_BATCH
from sendwell.kit.clock import utcnow
from sendwell.kit.signals import dispatch_work
from sendwell.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    Mailbox,
    SendLedger,
)
from sendwell.models.campaign import PENDING_STATUSES
from sendwell.providers.base import TAG_HEADER
from sendwell.sandbox.state import StoredMessage
from tests.conftest import Database
from tests.dispatch.conftest import SENDER, World
from tests.mailboxes.conftest import link
from tests.sandbox_support import Sandbox

SENDWELL = [sys.executable, "-m", "sendwell"]
TWO_STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0),
    ("Re: Hello {{ first_name }}", "Following up.", 0),
]
OTHER_SENDER = "grace@gmail.test"
ONE_STEP = [("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0)]


def recipients(count: int) -> list[str]:
    return [f"person{i}@example.com" for i in range(count)]


def worker_env(world: World, database: Database, **extra: str) -> dict[str, str]:
    """A clean environment (no inherited SENDWELL_*) that reaches the test's database and
    sandbox, and can decrypt the tokens the test's app stored."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SENDWELL_")}
    env.update(
        {
            "SENDWELL_DATABASE_URL": database.url,
            "SENDWELL_SECRET_KEY": world.settings.secret_key,
            "SENDWELL_TOKEN_KEYS": world.settings.token_keys,
            "SENDWELL_SANDBOX": "1",
            "SENDWELL_SANDBOX_URL": world.sandbox.url,
            "SENDWELL_BASE_URL": world.settings.base_url,
            "SENDWELL_INBOUND_POLL_SECONDS": "5",
            "SENDWELL_SETTLE_GRACE_SECONDS": "1",
        }
    )
    env.update(extra)
    return env


class Workers:
    """`sendwell worker` processes, each logging to its own file in a temporary folder."""

    def __init__(self, folder: Path, env: dict[str, str], sandbox: Sandbox) -> None:
        self.folder = folder
        self.env = env
        self.sandbox = sandbox
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log_path = self.folder / f"worker-{len(self.procs) + 1}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*SENDWELL, "worker", *args],
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def logs(self, tail: int = 4000) -> str:
        """The end of every worker's log, for assertion messages."""
        parts = []
        for index in range(1, len(self.procs) + 1):
            text = (self.folder / f"worker-{index}.log").read_text(errors="replace")
            parts.append(f"--- worker-{index} ---\n{text[-tail:]}")
        return "\n".join(parts)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@contextmanager
def workers(tmp_path: Path, world: World, database: Database, **extra: str) -> Iterator[Workers]:
    running = Workers(tmp_path, worker_env(world, database, **extra), world.sandbox)
    try:
        yield running
    finally:
        running.kill_all()


def worker_names(running: Workers) -> dict[str, subprocess.Popen[bytes]]:
    """Each running worker's name, as it printed it when it began sending."""
    names = {}
    for index, proc in enumerate(running.procs, start=1):
        text = (running.folder / f"worker-{index}.log").read_text(errors="replace")
        found = re.search(r"Worker (\S+) is sending", text)
        if found:
            names[found.group(1)] = proc
    return names


def sent_count(sandbox: Sandbox, mailbox: str = SENDER) -> int:
    """Messages in the sandbox mailbox's Sent folder (read in-process, cheaper than HTTP)."""
    box = sandbox.state.mailbox(mailbox)
    with sandbox.state.lock:
        return sum(1 for message in box.messages if message.folder == "sent")


def wait_until(
    condition: Callable[[], bool],
    stall: float,
    running: Workers,
    what: str,
    step: float = 0.1,
    limit: float = 600,
) -> None:
    """Wait for `condition` while the workers live and Sent keeps growing.

    The machine is shared and its load varies, so a slow run is not a failure: only `stall`
    seconds without a new message in Sent is (or `limit` seconds in all).
    """
    start = last_change = time.monotonic()
    seen = sent_count(running.sandbox)
    while not condition():
        for proc in running.procs:
            assert proc.poll() in (None, -signal.SIGKILL), (
                f"a worker exited with {proc.returncode} while waiting for {what}\n"
                + running.logs()
            )
        now, count = time.monotonic(), sent_count(running.sandbox)
        if count != seen:
            seen, last_change = count, now
        if now - last_change >= stall or now - start >= limit:
            pytest.fail(
                f"gave up waiting for {what} after {now - start:.0f} s ({count} in Sent)\n"
                + running.logs()
            )
        time.sleep(step)


def waiting_for_retry(world: World, campaign_id: int) -> list[str] | None:
    """The recipients whose failed send waits for its retry's backoff, once none of the
    campaign's sends is claimed or has an outcome still unknown (None while one has)."""
    now = utcnow()
    with session_scope(world.factory) as db:
        busy = db.scalar(
            select(func.count())
            .select_from(SendLedger)
            .where(
                SendLedger.campaign_id == campaign_id,
                SendLedger.status.in_((LedgerStatus.CLAIMED, LedgerStatus.UNKNOWN)),
            )
        )
        if busy:
            return None
        return list(
            db.scalars(
                select(Enrollment.email)
                .join(SendLedger, SendLedger.enrollment_id == Enrollment.id)
                .where(
                    SendLedger.campaign_id == campaign_id,
                    SendLedger.status == LedgerStatus.RETRY,
                    Enrollment.status.in_(PENDING_STATUSES),
                    Enrollment.next_due_at > now,
                )
                .distinct()
            )
        )


def end_backoffs(
    world: World, campaign_id: int, running: Workers, faults_spent: Callable[[], bool]
) -> None:
    """Stands in for waiting out the backoff before the sends the host's faults failed are
    tried again (15-30 s; tests/dispatch/test_faults.py checks how long): whenever every send
    has settled, the recipients waiting for a retry are due at once, until the faults are spent.
    (With few recipients left, one recipient may meet several faults in turn.) Nothing to do if
    the campaign completed meanwhile."""

    def settled() -> bool:
        if campaign_status(world, campaign_id) is CampaignStatus.COMPLETED:
            return True
        spent = faults_spent()
        waiting = waiting_for_retry(world, campaign_id)
        if waiting is None:
            return False
        if waiting:
            world.due_now(campaign_id, waiting)
        return spent

    wait_until(settled, 60, running, "the failed sends to settle", step=0.1)


def address(message: dict[str, Any]) -> str:
    return parseaddr(str(message["to"][0]))[1].lower()


def assert_exactly_once(
    world: World, emails: list[str], steps: int, senders: tuple[str, ...] = (SENDER,)
) -> list[dict[str, Any]]:
    """Every (recipient, step) in Sent exactly once, each a distinct ledger row marked sent."""
    sent = [message for sender in senders for message in world.sent(sender)]
    by_step = Counter((address(m), m["subject"]) for m in sent)
    duplicates = {key: n for key, n in by_step.items() if n > 1}
    assert not duplicates, f"sent more than once: {sorted(duplicates.items())[:10]}"
    tags = Counter(str(m["headers"].get("X-Sendwell-Send-Id", "")) for m in sent)
    assert not {tag: n for tag, n in tags.items() if n > 1}
    assert {address(m) for m in sent} == set(emails)
    assert len(sent) == len(emails) * steps, "some (recipient, step) was never sent"
    with session_scope(world.factory) as db:
        ledger = {
            row.tag: row.status for row in db.execute(select(SendLedger.tag, SendLedger.status))
        }
        enrollment_statuses = set(db.scalars(select(Enrollment.status)))
    assert set(tags) == {tag for tag, status in ledger.items() if status is LedgerStatus.SENT}
    assert set(ledger.values()) == {LedgerStatus.SENT}
    assert enrollment_statuses == {EnrollmentStatus.COMPLETED}
    return sent


def campaign_status(world: World, campaign_id: int) -> CampaignStatus:
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign.status


def unknown_tags(world: World) -> set[str]:
    """Tags of sends handed to the host whose outcome the ledger does not know."""
    with session_scope(world.factory) as db:
        return set(
            db.scalars(select(SendLedger.tag).where(SendLedger.status == LedgerStatus.UNKNOWN))
        )


def ledger_status(world: World, tags: set[str]) -> set[LedgerStatus]:
    with session_scope(world.factory) as db:
        return set(db.scalars(select(SendLedger.status).where(SendLedger.tag.in_(tags))))


def sent_tags(sandbox: Sandbox, mailbox: str = SENDER) -> set[str]:
    box = sandbox.state.mailbox(mailbox)
    with sandbox.state.lock:
        return {m.header("X-Sendwell-Send-Id") for m in box.messages if m.folder == "sent"}


def expire_leases(world: World) -> int:
    """Stands in for waiting out a killed worker's leases (provider timeout * 2 + 30 s):
    its claims and in-flight sends become due for release and settling at once."""
    with session_scope(world.factory) as db:
        result = db.execute(
            update(SendLedger)
            .where(
                SendLedger.status.in_((LedgerStatus.CLAIMED, LedgerStatus.UNKNOWN)),
                SendLedger.lease_until.is_not(None),
            )
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def expire_send(world: World, tag: str) -> None:
    """Stands in for waiting out the lease of one send whose outcome is unknown: it is looked
    for in Sent at the next pass."""
    with session_scope(world.factory) as db:
        db.execute(
            update(SendLedger)
            .where(SendLedger.tag == tag, SendLedger.status == LedgerStatus.UNKNOWN)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )


def expire_leases_of(world: World, worker: str) -> None:
    """Stands in for waiting out a killed worker's leases (provider timeout * 2 + 30 s):
    its claims, its sends in flight and its hold on a mailbox become due at once. Only the
    dead worker's: a live worker's lease taken away would let its sends be settled early."""
    expired = utcnow() - timedelta(seconds=1)
    with session_scope(world.factory) as db:
        db.execute(
            update(SendLedger)
            .where(
                SendLedger.worker == worker,
                SendLedger.status.in_((LedgerStatus.CLAIMED, LedgerStatus.UNKNOWN)),
                SendLedger.lease_until.is_not(None),
            )
            .values(lease_until=expired)
        )
        db.execute(
            update(Mailbox)
            .where(Mailbox.sender == worker, Mailbox.sender_until.is_not(None))
            .values(sender_until=expired)
        )


# Two mailboxes, one two-step campaign each: 400 messages. (`make chaos` sends thousands
# with two or three workers at once: its kills, faults and hammer scenarios.)
SHARED_RECIPIENTS = 200


def test_two_workers_on_postgresql_share_the_mailboxes_and_send_each_message_once(
    world: World, database: Database, tmp_path: Path
) -> None:
    """Two mailboxes, two workers: each mailbox is sent for by one worker at a time (its
    sender lease), the workers share the mailboxes, and nothing goes out twice."""
    if database.backend == "sqlite":
        pytest.skip("concurrent workers rely on PostgreSQL's SKIP LOCKED claims")
    link(world.client, OTHER_SENDER)
    emails = recipients(SHARED_RECIPIENTS)
    half = SHARED_RECIPIENTS // 2
    with session_scope(world.factory) as db:
        for mailbox in db.scalars(select(Mailbox)):
            mailbox.daily_cap = 5000  # the default (1,000) would stop the run half-way
    with workers(tmp_path, world, database) as running:
        pair = [running.start(), running.start()]
        # Both workers up before anything is due, so neither sends it all before the other
        # starts; starting the campaigns wakes both (a NOTIFY).
        wait_until(lambda: len(worker_names(running)) == 2, 60, running, "both workers")
        campaign_ids = [
            world.campaign(TWO_STEPS, part, sender=sender, min_gap_seconds=0, start_delay_minutes=0)
            for sender, part in ((SENDER, emails[:half]), (OTHER_SENDER, emails[half:]))
        ]
        wait_until(
            lambda: (
                sent_count(world.sandbox) + sent_count(world.sandbox, OTHER_SENDER)
                >= 2 * SHARED_RECIPIENTS
            ),
            60,
            running,
            f"{2 * SHARED_RECIPIENTS} messages in Sent",
            step=0.2,
        )
        time.sleep(2)  # a duplicate sent late would show up now
        assert_exactly_once(world, emails, steps=2, senders=(SENDER, OTHER_SENDER))
        with session_scope(world.factory) as db:
            senders = set(
                db.scalars(select(SendLedger.worker).where(SendLedger.status == LedgerStatus.SENT))
            )
        assert len(senders) == 2, senders
        for campaign_id in campaign_ids:
            assert campaign_status(world, campaign_id) is CampaignStatus.COMPLETED

        for proc in pair:
            proc.send_signal(signal.SIGTERM)
        # The stop flag is only looked at when the loop wakes (see
        # test_worker_stops_promptly_on_sigterm); wake both the way other processes do.
        with session_scope(world.factory) as db:
            dispatch_work.request(db)
        for proc in pair:
            assert proc.wait(timeout=20) == 0, running.logs()
        assert "dispatch_loop_failed" not in running.logs(tail=10**9), running.logs()


# The first worker is killed at the last message of its first batch (so it holds no other
# claim), the second half-way through its own batch, the third sends the rest. (`make chaos`
# kills workers at random moments through thousands of messages.)
MID_RUN_RECIPIENTS = 2 * SEND_BATCH
FIRST_KILL_AT = SEND_BATCH
SECOND_KILL_AFTER = SEND_BATCH + SEND_BATCH // 2


def test_worker_killed_mid_run_leaves_nothing_lost_or_doubled(
    world: World, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emails = recipients(MID_RUN_RECIPIENTS)
    campaign_id = world.campaign(ONE_STEP, emails, min_gap_seconds=0, start_delay_minutes=0)
    state = world.sandbox.state
    box = state.mailbox(SENDER)
    # No settle grace: a send that timed out is looked for in Sent at the next pass. (The
    # sandbox never stores a send it timed out; with a grace, the last one of a run waited
    # for the worker's idle wake, 30 s, before it was looked for.)
    with workers(
        tmp_path,
        world,
        database,
        SENDWELL_PROVIDER_TIMEOUT_SECONDS="1",
        SENDWELL_SETTLE_GRACE_SECONDS="0",
    ) as running:
        # First kill, at the worst moment: the host has stored the batch's last message but
        # the worker never hears back, so its ledger row stays "unknown". The next worker must find
        # it in Sent and not send it again.
        original_store = state.store
        victim: dict[str, subprocess.Popen[bytes]] = {}

        def store(mailbox: Any, parsed: Message, **kwargs: Any) -> StoredMessage:
            stored = original_store(mailbox, parsed, **kwargs)
            if kwargs.get("folder") == "sent" and "proc" in victim:
                with state.lock:
                    count = sum(1 for m in mailbox.messages if m.folder == "sent")
                if count == FIRST_KILL_AT:
                    victim.pop("proc").kill()
            return stored

        monkeypatch.setattr(state, "store", store)
        victim["proc"] = first = running.start()
        wait_until(lambda: first.poll() is not None, 60, running, "the first kill", step=0.2)
        assert first.returncode == -signal.SIGKILL, running.logs()
        accepted_unrecorded = unknown_tags(world)
        assert len(accepted_unrecorded) == 1
        assert accepted_unrecorded <= sent_tags(world.sandbox)
        assert sent_count(world.sandbox) == FIRST_KILL_AT
        # Stands in for waiting out the dead worker's lease (provider timeout * 2 + 30 s).
        assert expire_leases(world) == 1

        # Second kill: a send the host holds longer than the worker waits (3 s against its
        # 1 s timeout); the worker dies with it in flight and the host never stores it, so
        # the next worker must send it again.
        world.sandbox.admin("timeout", {"seconds": 3})
        second = running.start()
        wait_until(
            lambda: sent_count(world.sandbox) >= SECOND_KILL_AFTER,
            60,
            running,
            f"{SECOND_KILL_AFTER} sent",
            step=0.05,
        )
        assert ledger_status(world, accepted_unrecorded) == {LedgerStatus.SENT}, "not settled"
        world.sandbox.admin("faults", {"mailbox": SENDER, "fault": "timeout", "count": 1})
        wait_until(lambda: not box.send_faults, 30, running, "the slow send", step=0.01)
        second.kill()
        second.wait(timeout=10)
        in_flight_lost = unknown_tags(world)
        assert len(in_flight_lost) == 1
        assert not in_flight_lost & sent_tags(world.sandbox)
        assert expire_leases(world) >= 1

        # The last worker meets a slow host too: its timed-out sends are looked for in Sent,
        # not found, and sent again (after the retry's backoff, which the test does not wait
        # out), each exactly once.
        world.sandbox.admin("faults", {"mailbox": SENDER, "fault": "timeout", "count": 3})
        third = running.start()
        end_backoffs(world, campaign_id, running, lambda: not box.send_faults)
        wait_until(
            lambda: campaign_status(world, campaign_id) is CampaignStatus.COMPLETED,
            60,
            running,
            "the campaign to complete",
            step=0.5,
        )
        time.sleep(2)  # a duplicate sent late would show up now
        assert not box.send_faults
        sent = assert_exactly_once(world, emails, steps=1)
        tags = Counter(str(m["headers"].get("X-Sendwell-Send-Id", "")) for m in sent)
        assert all(tags[tag] == 1 for tag in accepted_unrecorded | in_flight_lost)
        third.kill()
        third.wait(timeout=10)


# Two mailboxes of 30; a worker is killed at a mailbox's 10th message, so that mailbox has
# 20 left for the worker that takes it over. (`make chaos` kills workers at scale.)
TAKEOVER_RECIPIENTS = 60
TAKEOVER_KILL_AT = 10


def test_a_killed_worker_hands_its_mailboxes_over_before_its_lease_ends(
    world: World, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker is SIGKILLed right after the host stored one of its messages (it never hears
    back, so that send's outcome is unknown). Another worker (on SQLite: the same command
    started again, as a restarted `sendwell serve` would) sends for the dead worker's mailbox
    long before the dead worker's sender lease would have ended; the send whose outcome was
    unknown is found in Sent rather than sent again, and nothing goes out twice."""
    link(world.client, OTHER_SENDER)
    emails = recipients(TAKEOVER_RECIPIENTS)
    half = TAKEOVER_RECIPIENTS // 2
    for sender, part in ((SENDER, emails[:half]), (OTHER_SENDER, emails[half:])):
        world.campaign(ONE_STEP, part, sender=sender, min_gap_seconds=0, start_delay_minutes=0)
    state = world.sandbox.state
    killed: dict[str, Any] = {}
    # Set once every entry of `killed` is written: the sandbox's request thread fills it
    # while the test waits, and two sends stored at once must not both kill.
    kill_done = threading.Event()
    kill_lock = threading.Lock()
    # A one-second provider timeout makes the lease 32 s: a takeover before it ends is the
    # liveness lock's doing.
    with workers(tmp_path, world, database, SENDWELL_PROVIDER_TIMEOUT_SECONDS="1") as running:
        original_store = state.store

        def store(mailbox: Any, parsed: Message, **kwargs: Any) -> StoredMessage:
            stored = original_store(mailbox, parsed, **kwargs)
            if kwargs.get("folder") != "sent":
                return stored
            with kill_lock:
                if kill_done.is_set():
                    return stored
                with state.lock:
                    count = sum(1 for m in mailbox.messages if m.folder == "sent")
                if count < TAKEOVER_KILL_AT:
                    return stored
                tag = str(parsed[TAG_HEADER])
                with session_scope(world.factory) as db:
                    row = db.scalars(select(SendLedger).where(SendLedger.tag == tag)).one()
                    name, mailbox_id = row.worker, row.mailbox_id
                    # Read before the kill: the worker waits for this very answer, so its hold
                    # on the mailbox is as it was while sending. (After the kill, another
                    # worker may already have taken the mailbox over.)
                    box = db.get(Mailbox, mailbox_id)
                    assert box is not None
                    holder, lease_until = box.sender, box.sender_until
                at = utcnow()
                worker_names(running)[name].kill()
                killed.update(
                    name=name,
                    tag=tag,
                    mailbox=mailbox.address,
                    mailbox_id=mailbox_id,
                    at=at,
                    holder=holder,
                    lease_until=lease_until,
                )
                kill_done.set()
            return stored

        monkeypatch.setattr(state, "store", store)
        concurrent = database.backend == "postgresql"
        running.start()
        if concurrent:
            running.start()
        wait_until(kill_done.is_set, 60, running, "the kill", step=0.05)
        # The dead worker was sending for the mailbox, under a lease that had time to run.
        assert killed["holder"] == killed["name"]
        assert killed["lease_until"] is not None
        assert killed["lease_until"] > killed["at"]
        assert killed["tag"] in unknown_tags(world)
        # The send handed to the host keeps its own lease (the host may still be finishing
        # it) whoever takes the mailbox over; this stands in for waiting it out, and leaves
        # the dead worker's sender lease and its other claims as they are.
        expire_send(world, killed["tag"])
        if not concurrent:
            running.start()

        def survivor_sent() -> bool:
            with session_scope(world.factory) as db:
                return (
                    db.scalar(
                        select(SendLedger.id).where(
                            SendLedger.mailbox_id == killed["mailbox_id"],
                            SendLedger.status == LedgerStatus.SENT,
                            SendLedger.worker != killed["name"],
                            SendLedger.sent_at > killed["at"],
                        )
                    )
                    is not None
                )

        wait_until(survivor_sent, 30, running, "another worker to send for the mailbox")
        # Before the dead worker's sender lease (and its claims' leases) would have ended.
        assert utcnow() < killed["lease_until"], running.logs()
        wait_until(
            lambda: (
                sent_count(world.sandbox) + sent_count(world.sandbox, OTHER_SENDER)
                >= TAKEOVER_RECIPIENTS
            ),
            60,
            running,
            "every message in Sent",
        )
        wait_until(lambda: not unknown_tags(world), 60, running, "the unknown send to settle")
        time.sleep(2)  # a duplicate sent late would show up now
        sent = assert_exactly_once(world, emails, steps=1, senders=(SENDER, OTHER_SENDER))
        tags = Counter(str(m["headers"].get(TAG_HEADER, "")) for m in sent)
        assert tags[killed["tag"]] == 1, "the send whose outcome was unknown went twice"


def test_worker_once_sends_what_is_due_and_exits(
    world: World, database: Database, tmp_path: Path
) -> None:
    emails = recipients(5)
    steps = [
        ("Hello {{ first_name }}", "Hi {{ first_name }}.", 0),
        ("Re: Hello {{ first_name }}", "Following up.", 60 * 24),
    ]
    campaign_id = world.campaign(steps, emails, min_gap_seconds=0, start_delay_minutes=0)
    result = subprocess.run(
        [*SENDWELL, "worker", "--once"],
        cwd=tmp_path,
        env=worker_env(world, database),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    sent = world.sent()
    assert sorted(address(m) for m in sent) == sorted(emails)
    assert {m["subject"] for m in sent} == {f"Hello {e.split('@')[0]}" for e in emails}
    assert campaign_status(world, campaign_id) is CampaignStatus.ACTIVE
    with session_scope(world.factory) as db:
        enrollments = list(db.scalars(select(Enrollment)))
    assert {e.status for e in enrollments} == {EnrollmentStatus.IN_PROGRESS}
    assert all(e.steps_sent == 1 for e in enrollments)
    assert all(e.next_due_at and e.next_due_at > utcnow() for e in enrollments)

    again = subprocess.run(
        [*SENDWELL, "worker", "--once"],
        cwd=tmp_path,
        env=worker_env(world, database),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr + again.stdout
    assert len(world.sent()) == len(emails), "nothing more was due"


def test_worker_stops_promptly_on_sigterm(world: World, database: Database, tmp_path: Path) -> None:
    if database.backend == "postgresql":
        pytest.skip("the signal handling does not depend on the backend")
    with workers(tmp_path, world, database) as running:
        proc = running.start()
        log = tmp_path / "worker-1.log"
        wait_until(lambda: "is sending" in log.read_text(), 30, running, "the worker to start")
        time.sleep(1)  # idle now: nothing is due, so it waits up to IDLE_WAKE
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, running.logs()
