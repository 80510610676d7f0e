"""8. The real workload: thousands of paced mailboxes, each sent for on time.

Every mailbox is a Gmail account of the sandbox, granted to Sendwell's client and saved with
the product's own `connect_grant` (tokens sealed as a linked mailbox's are), with a minimum
gap between sends and one active one-step campaign made and started with the campaigns
service. Sendwell then runs as in production: `sendwell serve` on SQLite, or two
`sendwell worker` on PostgreSQL, reading each inbox every minute as well.

Lateness of a send = its arrival in the sandbox - the earliest moment the engine allowed
it. That moment is the mailbox's `send_not_before` just before the claim of this send: the
previous claim set it to (that claim's time + minimum gap x (1 + jitter)) as pacing.next_gap
computed it. A trigger, added to the database for the benchmark only, copies each change of
`send_not_before` (old value, new value, when) into `bench_slots`; each arrival is paired with
the last change made before it (its own claim), whose old value is its earliest moment.
Before the run each mailbox's first slot is set as if the mailboxes had been sending for a
long while rather than all starting in the same second (`steady_first_slot`, counted from
the commit that starts every campaign). Slots spread evenly over the minimum gap only, and
counted from before the mailboxes were made (which takes 10-15 s), left a hole and a crowd
in the sends' phases for several gaps: a window counted up to 4% more or fewer sends than the
schedule gives, by where its edges fell.
"""

from __future__ import annotations

import math
import random
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Connection, select, text

from bench import dataset
from bench.common import BenchError, Figure, Profile, Section, chunks, percentile, ratio
from bench.stack import Lab, Stack, cpu_seconds, peak_rss_mb, vacuum_analyze
from sendwell.accounts import service as accounts
from sendwell.campaigns import service as campaigns
from sendwell.config import Settings
from sendwell.db import make_session_factory, session_scope
from sendwell.dispatch.pacing import GAP_JITTER
from sendwell.kit.clock import utcnow
from sendwell.mailboxes import service as mailboxes
from sendwell.mailboxes.provider_services import build_services
from sendwell.models import Mailbox
from sendwell.providers.base import Grant, Identity, ProviderName, TokenSet
from sendwell.providers.registry import build_registry, make_http_client

GROUP = "8. Paced mailboxes on time"
STEP = campaigns.StepIn(
    subject="Quick question, {{ first_name }}",
    body="Hi {{ first_name }},\n\nDo you have a minute this week?\n\nBest",
)
# Per dialect: the bench-only table and trigger that keep every pacing slot the engine set.
SLOT_TRIGGER = {
    "sqlite": [
        "CREATE TABLE bench_slots (mailbox_id INTEGER, before TEXT, after TEXT, at TEXT)",
        "CREATE TRIGGER bench_slot AFTER UPDATE OF send_not_before ON mailboxes "
        "WHEN NEW.send_not_before IS NOT OLD.send_not_before BEGIN "
        "INSERT INTO bench_slots VALUES (NEW.id, OLD.send_not_before, NEW.send_not_before, "
        "strftime('%Y-%m-%d %H:%M:%f', 'now')); END",
    ],
    "postgresql": [
        "CREATE TABLE bench_slots (mailbox_id integer, before timestamptz, "
        "after timestamptz, at timestamptz)",
        "CREATE FUNCTION bench_slot() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO bench_slots VALUES (NEW.id, OLD.send_not_before, NEW.send_not_before, "
        "clock_timestamp()); RETURN NULL; END $$",
        "CREATE TRIGGER bench_slot AFTER UPDATE OF send_not_before ON mailboxes FOR EACH ROW "
        "WHEN (NEW.send_not_before IS DISTINCT FROM OLD.send_not_before) "
        "EXECUTE FUNCTION bench_slot()",
    ],
}


@dataclass
class PacedRun:
    lateness: list[float]
    achieved: float
    expected: float
    silent: int
    early: int
    setup_seconds: float
    cpu_share: float
    rss_mb: list[float]


def moment(value: Any) -> float:
    """A database timestamp (a datetime, or SQLite's text) as Unix seconds."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def steady_first_slot(rng: random.Random, gap: int) -> float:
    """Seconds from now to a mailbox's next send, at a random moment of a long run of gaps
    drawn as `pacing.next_gap` draws them (evenly between the gap and the gap stretched by
    GAP_JITTER): a moment falls in a gap with a chance in proportion to the gap's length
    (a length drawn so), and anywhere within it."""
    shortest, longest = gap, gap * (1 + GAP_JITTER)
    length = math.sqrt(rng.uniform(shortest**2, longest**2))
    return rng.uniform(0, length)


def populate(
    stack: Stack,
    count: int,
    gap: int,
    recipients_each: int,
    then: Callable[[Connection], None] | None = None,
    *,
    slots: bool = True,
) -> list[str]:
    """`count` Gmail mailboxes granted in the sandbox and saved as linked ones, each with a
    started one-step campaign of `recipients_each` recipients; returns their addresses.
    `then` runs in the start's transaction, after it. `slots`: each mailbox's first pacing
    slot set as if it had been sending for long (else none: it may send at once)."""
    addresses = [f"paced-{index}@gmail.test" for index in range(count)]
    granted: list[dict[str, Any]] = []
    with httpx.Client(timeout=120) as client:
        for part in chunks(count, 1_000):
            response = client.post(
                f"http://127.0.0.1:{stack.sandbox_port}/bench/grants",
                json={"addresses": [addresses[i] for i in part]},
            )
            response.raise_for_status()
            granted += response.json()
    values: dict[str, Any] = {k.removeprefix("SENDWELL_").lower(): v for k, v in _sendwell(stack)}
    settings = Settings(_env_file=None, **values)
    factory = make_session_factory(stack.db.engine)
    rng = random.Random(8)  # noqa: S311 - spreading start slots, not a secret
    first_slots: dict[int, float] = {}
    with make_http_client(settings) as http:
        services = build_services(settings, build_registry(settings, http))
        for part in chunks(count, 250):
            with session_scope(factory) as db:
                user = accounts.get_user_by_email(db, "bench-owner@example.com")
                for index in part:
                    answer = granted[index]
                    linked = mailboxes.connect_grant(
                        db,
                        services,
                        user=user,
                        provider_name=ProviderName.GOOGLE,
                        grant=Grant(
                            tokens=TokenSet(
                                access_token=answer["access_token"],
                                refresh_token=answer["refresh_token"],
                                expires_at=utcnow() + timedelta(seconds=answer["expires_in"]),
                                scopes=frozenset(answer["scopes"]),
                            ),
                            identity=Identity(
                                subject=answer["subject"],
                                email=answer["email"],
                                display_name=answer["name"],
                            ),
                        ),
                    )
                    mailbox = linked.mailbox
                    # Gmail's documented daily limit for Workspace accounts is 2,000.
                    mailbox.daily_cap = 2_000
                    mailbox.min_gap_seconds = gap
                    if slots:
                        first_slots[mailbox.id] = steady_first_slot(rng, gap)
                    campaigns.create_campaign(
                        db,
                        user,
                        name=f"Paced {index}",
                        mailbox_id=mailbox.id,
                        steps=[STEP],
                        start_delay_minutes=0,
                    )
    with stack.db.engine.begin() as connection:
        for statement in SLOT_TRIGGER[stack.db.backend]:
            connection.execute(text(statement))
    start_all(stack, recipients_each, then, first_slots)
    if stack.db.backend == "postgresql":
        vacuum_analyze(stack.db.url)  # as autovacuum would after such a load, within a minute
    return addresses


def start_all(
    stack: Stack,
    recipients_each: int,
    then: Callable[[Connection], None] | None = None,
    first_slots: dict[int, float] | None = None,
) -> None:
    """Recipients added and every campaign started in one commit, written with SQL as
    `campaigns.service.start` leaves them (active, first emails due now): the service
    validates each campaign by rendering every recipient's message, minutes at this size.
    Each mailbox's first slot is set `first_slots` seconds from that commit (the mailboxes
    made before it took seconds, which would otherwise have made many slots due at once).
    `then` runs last, in the same transaction."""
    dialect = stack.db.backend
    now = utcnow()

    def stored(moment: datetime) -> Any:
        return moment if dialect == "postgresql" else dataset.sqlite_moment(moment)

    params = {"now": stored(now)}
    with stack.db.engine.begin() as connection:
        connection.execute(
            text(
                f"""INSERT INTO enrollments (campaign_id, email, first_name, last_name, company,
                title, fields, status, steps_sent, next_due_at, last_sent_at, thread_id,
                last_message_id, status_reason, created_at)
            SELECT c.id, 'c' || c.id || '-r' || g || '@example.com', 'R' || g, '', '', '',
                '{{}}', 'not_started', 0, :now, NULL, '', '', '', :now
            FROM campaigns AS c, ({dataset.SERIES[dialect]}) AS numbers
            WHERE c.status = 'draft'"""  # noqa: S608 - fixed fragments
            ),
            {**params, "n": recipients_each},
        )
        connection.execute(
            text(
                "UPDATE campaigns SET status = 'active', started_at = :now, "
                "status_changed_at = :now WHERE status = 'draft'"
            ),
            params,
        )
        if first_slots:
            # From the end of this transaction, as near as can be: the insert above takes
            # seconds at this size, and slots counted from before it would come all at once.
            slots_from = utcnow()
            connection.execute(
                text("UPDATE mailboxes SET send_not_before = :at WHERE id = :id"),
                [
                    {"id": mailbox_id, "at": stored(slots_from + timedelta(seconds=offset))}
                    for mailbox_id, offset in first_slots.items()
                ],
            )
        if then is not None:
            then(connection)


def _sendwell(stack: Stack) -> list[tuple[str, str]]:
    return [(k, v) for k, v in stack.env().items() if k.startswith("SENDWELL_")]


def measure(stack: Stack, profile: Profile) -> PacedRun:
    count, gap = profile.paced_mailboxes, profile.paced_gap_seconds
    began = time.monotonic()
    populate(stack, count, gap, profile.paced_recipients)
    started = time.time()
    setup = time.monotonic() - began
    sendwell = stack.pids("server") + stack.pids("worker")
    window_opens = started + profile.paced_warmup_seconds
    window_closes = window_opens + profile.paced_window_seconds
    while time.time() < window_opens:
        stack.procs.check()
        time.sleep(1)
    cpu_before, clock_before = cpu_seconds(sendwell), time.monotonic()
    while time.time() < window_closes:
        stack.procs.check()
        time.sleep(1)
    cpu_after, clock_after = cpu_seconds(sendwell), time.monotonic()
    cpu_share = sum(cpu_after[p] - cpu_before.get(p, 0.0) for p in cpu_after) / (
        clock_after - clock_before
    )
    rss = [peak_rss_mb(pid) for pid in stack.pids("worker")] or [
        peak_rss_mb(pid) for pid in stack.pids("server")
    ]
    answer = httpx.get(f"http://127.0.0.1:{stack.sandbox_port}/bench/sent", timeout=120)
    answer.raise_for_status()
    arrivals: dict[str, list[float]] = answer.json()
    with session_scope(make_session_factory(stack.db.engine)) as db:
        emails = dict(db.execute(select(Mailbox.id, Mailbox.email)).tuples().all())
        slots: dict[str, list[tuple[float, float | None]]] = {}
        for mailbox_id, before, at in db.execute(
            text("SELECT mailbox_id, before, at FROM bench_slots ORDER BY at")
        ):
            slots.setdefault(emails[mailbox_id], []).append(
                (moment(at), moment(before) if before is not None else None)
            )
    lateness, silent, early = [], 0, 0
    for address, times in arrivals.items():
        if not address.startswith("paced-"):
            continue
        own = slots.get(address, [])
        claims = [at for at, _ in own]
        counted = [t for t in times if window_opens <= t < window_closes]
        silent += not counted
        for arrived in counted:
            index = bisect_right(claims, arrived) - 1
            earliest = own[index][1] if index >= 0 else None
            if earliest is None:
                raise BenchError(f"{address}: a send at {arrived} with no slot before it")
            late = arrived - earliest
            early += late < 0
            lateness.append(late)
    mean_gap = gap * (1 + GAP_JITTER / 2)
    return PacedRun(
        lateness=lateness,
        achieved=len(lateness) / profile.paced_window_seconds,
        expected=count / mean_gap,
        silent=silent,
        early=early,
        setup_seconds=setup,
        cpu_share=cpu_share,
        rss_mb=rss,
    )


def run(profile: Profile, lab: Lab) -> Section:
    figures: list[Figure] = []
    notes: list[str] = []
    for name, label, backend, workers in (
        ("paced-sqlite", "(a) one `sendwell serve` on SQLite", "sqlite", 0),
        ("paced-postgres", "(b) two `sendwell worker` on PostgreSQL", "postgresql", 2),
    ):
        stack = lab.stack(name, backend, dispatcher=not workers, workers=workers)
        try:
            result = measure(stack, profile)
        finally:
            lab.close(name)
        late_ms = [1000 * value for value in result.lateness]
        p99, worst = percentile(late_ms, 99), max(late_ms)
        share = ratio(result.achieved, result.expected)
        figures += [
            Figure(GROUP, f"{label}: lateness", "ms", late_ms, summary="p50", digits=0),
            Figure(
                GROUP,
                f"{label}: lateness",
                "ms",
                late_ms,
                summary="p99",
                target="≤ 1,000 ms",
                met=p99 <= 1000,
                digits=0,
            ),
            Figure(
                GROUP,
                f"{label}: lateness",
                "ms",
                late_ms,
                summary="max",
                target="≤ 5,000 ms",
                met=worst <= 5000,
                digits=0,
            ),
            Figure(
                GROUP,
                f"{label}: achieved rate",
                "msg/s",
                [result.achieved],
                target="≥ 0.98x expected",
                met=share >= 0.98,
                versus=f"{share:.3f}x expected ({result.expected:.1f} msg/s)",
                note=f"{len(result.lateness):,} sends measured",
            ),
            Figure(
                GROUP,
                f"{label}: Sendwell CPU busy",
                "cores",
                [result.cpu_share],
                digits=2,
                note="user + system time of its processes over the window",
            ),
            Figure(GROUP, f"{label}: peak RSS per process", "MB", result.rss_mb, digits=0),
        ]
        notes.append(
            f"{label}: {result.silent} of {profile.paced_mailboxes:,} mailboxes sent nothing "
            f"in the window; {result.early} sends arrived before their earliest moment; "
            f"setup (grants, mailboxes, campaigns) took {result.setup_seconds:.0f} s."
        )
    return Section(
        GROUP,
        f"{profile.paced_mailboxes:,} sandbox Gmail mailboxes, each with a "
        f"{profile.paced_gap_seconds} s minimum gap (plus pacing's jitter of up to "
        f"{GAP_JITTER:.0%}) and one active one-step campaign of {profile.paced_recipients} "
        "recipients; replies read every 60 s per mailbox (the default). After "
        f"{profile.paced_warmup_seconds} s of warm-up, every arrival in the sandbox during the "
        f"next {profile.paced_window_seconds} s is measured. Lateness = arrival - the "
        "mailbox's `send_not_before` just before the claim of that send (set by the previous "
        "claim to its time plus the drawn gap; copied out by a benchmark-only trigger). "
        "Expected rate = mailboxes / (gap x (1 + jitter / 2)), what they send if each is sent "
        "for the moment it may be.",
        figures,
        notes=notes,
    )
