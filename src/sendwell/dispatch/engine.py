"""The dispatch loop: settle what is unsettled, read replies, then claim and send due steps.

A step is claimed in the ledger (committed) before any provider call; the claim passes a gate
(campaign active, mailbox connected, recipient pending) in one statement just before the
call; its outcome is recorded with the recipient's next step in one transaction. A send whose
outcome is unknown is looked for in the Sent folder before it may be tried again.

`send_for` is the four steps: `claim` (composing each message with `compose.compose`),
then for each claim `send` (the gate, then the host; it returns an `outcomes.Outcome`) and
`outcomes.Outcomes.record`. A mailbox's sends go one after another, and each send's record
is committed with the next claim's gate (`_gate_after`).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from sendwell.db import session_scope
from sendwell.dispatch import holds, inbound, liveness, outcomes, pacing
from sendwell.dispatch import repository as repo
from sendwell.dispatch.compose import (
    THREAD_WAIT,
    Prepared,
    Ready,
    compose,
    thread_so_far,
    waits_for_thread,
)
from sendwell.dispatch.flight import HostCalls
from sendwell.dispatch.outcomes import GaveUp, NotSent, Outcome, Refused, Sent
from sendwell.dispatch.policy import Claim, DispatchPolicy
from sendwell.kit.clock import utcnow
from sendwell.kit.logging import get_logger
from sendwell.kit.signals import dispatch_work
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.tokens import HeldCredential, HeldCredentials, MailboxNotConnected
from sendwell.models import (
    Campaign,
    CampaignStep,
    Enrollment,
    LedgerStatus,
    Mailbox,
    SendLedger,
    lifecycle,
)
from sendwell.models.lifecycle import EnrollmentEvent, LedgerEvent
from sendwell.providers.base import SentMessage
from sendwell.providers.errors import ProviderError

log = get_logger(__name__)
IDLE_WAKE = timedelta(seconds=30)
SEND_BATCH = 50
# Something is due yet nothing could be sent (a claim lost to another worker, a busy
# database): look again shortly rather than spin.
STUCK_RETRY = timedelta(seconds=1)
# Due recipients looked at per pass in a campaign whose recipients have their own time zones.
ZONED_LOOKAHEAD = 50
# How often a busy worker looks, between its sends, for workers that died: their mailboxes
# are served at once rather than after this pass.
TAKEOVER_LOOK = timedelta(seconds=0.5)
# Mailboxes that keep a gap between sends, claimed together in one transaction (one send each).
PACED_GROUP = 20
# An idle worker waits at least this long for the next inbox read, so the reads of a large
# quiet fleet (thousands of inboxes, a few falling due every second) are made a batch per pass
# rather than a pass each: every pass asks the database what is due across the fleet.
READ_GATHER = timedelta(seconds=1)
# A mailbox found with nothing due is left out of the walk until its first recipient may be
# due, and at most this long. The triggers that bring it back (migration 0023) pass over a
# recipient due two hours or more ahead, which such a mark always precedes.
NOTHING_DUE_HORIZON = timedelta(hours=1)
# How often a worker leaves mailboxes with no active campaign out of the walk, and how many
# at a time (`_leave_out_unused`).
UNUSED_LOOK = timedelta(minutes=1)
UNUSED_BATCH = 200
# ... and how soon it looks again when a batch was full: each batch holds one advisory lock per
# mailbox until its commit, and PostgreSQL's lock table is shared by every session.
UNUSED_MORE = timedelta(seconds=5)
GATE_REFUSED = "the campaign or account changed before sending"


@dataclass
class Claimed:
    """What a claim took: each message, and the gap each mailbox keeps (zero: none)."""

    ready: list[Ready] = field(default_factory=list)
    gaps: dict[int, timedelta] = field(default_factory=dict)

    def paced(self, mailbox_id: int) -> bool:
        return bool(self.gaps.get(mailbox_id))


def _may_go_at(campaign: Campaign, due: datetime, now: datetime) -> datetime:
    """When a campaign's earliest due step may go: once it is due and its mailbox's pacing
    allows, and its window opens if the window is closed now (an open window adds no moment,
    so a step that could have gone before now says when)."""
    moments = [due, campaign.mailbox.send_not_before or due]
    if (opens := pacing.campaign_window_opens(campaign, now)) > now:
        moments.append(opens)
    return max(moments)


class Dispatcher:
    """One worker's engine. Any number may run against PostgreSQL; they share all state there."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        services: ProviderServices,
        policy: DispatchPolicy,
        *,
        unsubscribe: outcomes.UnsubscribeLinks,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.factory = factory
        self.services = services
        self.policy = policy
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.wake = threading.Event()
        self.outcomes = outcomes.Outcomes(
            factory, services, policy, unsubscribe, self.rng, worker=self.worker_id
        )
        # Taken while the loop runs (`run_forever`, `present`), so that others take over at
        # once if this process dies; a dispatcher driven pass by pass holds none.
        self.liveness = liveness.liveness_for(factory, self.worker_id)
        self._next_look = utcnow()
        self._next_unused_look = utcnow()  # `_leave_out_unused`
        # Mailboxes a gone worker was sending for, served before anything else.
        self._freed: list[int] = []
        self._gone: set[str] = set()  # gone workers whose sends with a host are to be looked for
        # Paced mailboxes' credentials (and those of inboxes read), kept across passes.
        self.credentials = HeldCredentials(factory, services)
        # Host calls of different mailboxes in flight together (sends of paced mailboxes).
        self.host_calls = HostCalls(policy.calls_in_flight)
        self.inbound = inbound.InboundReader(
            factory,
            services,
            policy.inbound_interval,
            self.credentials,
            self.host_calls,
            quiet_interval=policy.inbound_quiet_interval,
        )

    def run_forever(self, stop: threading.Event) -> None:
        """Work until stopped, sleeping until the next due moment or until woken."""
        dispatch_work.register(self.wake)
        try:
            self._start_liveness(stop)
            while not stop.is_set():
                try:
                    next_at = self.run_once()
                except Exception:
                    log.exception("dispatch_loop_failed", worker=self.worker_id)
                    next_at = utcnow() + timedelta(seconds=5)
                self._idle_until(min(next_at, utcnow() + IDLE_WAKE), stop)
                self.wake.clear()
        finally:
            dispatch_work.unregister(self.wake)
            self.host_calls.close()
            self.liveness.close()

    def _idle_until(self, moment: datetime, stop: threading.Event) -> None:
        """Sleep until the moment or until woken; meanwhile, every TAKEOVER_LOOK, look for
        workers that died (a few statements): their mailboxes are not left waiting for this
        worker's next due moment."""
        while not stop.is_set():
            wait = (moment - utcnow()).total_seconds()
            if wait <= 0 or self.wake.wait(min(wait, TAKEOVER_LOOK.total_seconds())):
                return
            try:
                if self._take_over_from_gone_workers() or self.outcomes.relook_due():
                    return
            except Exception:
                log.exception("takeover_look_failed", worker=self.worker_id)
                return

    def _start_liveness(self, stop: threading.Event) -> None:
        """Take the liveness lock, waiting for the database if it is not there yet."""
        while not stop.is_set():
            try:
                self.liveness.start()
                return
            except (SQLAlchemyError, OSError):
                log.exception("liveness_lock_failed", worker=self.worker_id)
                stop.wait(5)

    @contextmanager
    def present(self) -> Iterator[None]:
        """Hold the liveness lock meanwhile (the CLI's one-shot mode)."""
        self.liveness.start()
        try:
            yield
        finally:
            self.liveness.close()

    def run_once(self) -> datetime:
        """One pass; returns when the next pass is worth making."""
        self._take_over_from_gone_workers()
        # Sends whose outcome is unknown are looked for in Sent before the pass sends (a
        # gone worker's too, once their lease ended): none is sent again meanwhile, and
        # none waits behind a batch.
        self.outcomes.settle_unknown()
        sent = self._serve_freed()
        # Ids first: a bounce or reply read next can only be matched to a send whose ids
        # are known.
        self.outcomes.fill_missing_metadata()
        more_to_read = self.inbound.read_due()
        holds.release_ended_holds(self.factory)
        self._leave_out_unused()
        walked_at = utcnow()
        for mailbox_ids, paced in self._due_groups(walked_at):
            handed = self.send_paced(mailbox_ids) if paced else self.send_for(mailbox_ids[0])
            sent = handed > 0 or sent
        self.credentials.sweep()
        return utcnow() if sent or more_to_read else self._next_wake(walked_at)

    def _take_over_from_gone_workers(self) -> bool:
        """Claims whose lease ended, and whatever a worker whose liveness lock is free held:
        its claims back in line, its mailboxes free to send for (liveness.py). True when it
        was sending for a mailbox or had sends with a host: they are dealt with first
        (`_serve_freed`)."""
        self.liveness.renew()
        gone = self.liveness.gone()
        self.outcomes.release_expired_claims(gone.names)
        freed = self.liveness.forget(gone)
        self._gone |= gone.names
        self._freed += freed
        self._next_look = utcnow() + TAKEOVER_LOOK
        return bool(freed or gone.names)

    def _settle_gone(self) -> None:
        """Look in Sent for what gone workers had handed to a host: at once for those just
        found gone, again for those not found yet whose turn came. One found there is
        recorded, so the recipient's next step (perhaps all its mailbox has due) need not wait
        for the send's lease; the rest wait for it, as before. Never raises: a send it could
        not look for is looked for again, or settled when its lease ends."""
        gone, self._gone = self._gone, set()
        try:
            if gone:
                self.outcomes.settle_found_of(gone)
            self.outcomes.look_again()
        except Exception:
            log.exception("settle_gone_failed", worker=self.worker_id)

    def _serve_freed(self) -> bool:
        """Send for the mailboxes gone workers were sending for, before the pass's
        housekeeping or other mailboxes: they have waited already. Their sends found in Sent
        are recorded first. Never called inside a window of calls in flight: the window's
        records must not wait behind host calls made here."""
        self._settle_gone()
        sent = False
        while self._freed:
            sent = self.send_for(self._freed.pop(0)) > 0 or sent
        return sent

    def _time_to_look(self) -> bool:
        return utcnow() >= self._next_look

    def _look_for_gone_workers(self, *, serve: bool = True) -> None:
        """Between sends, now and then: take over from workers that died meanwhile and (with
        `serve`) send for their mailboxes right away; then this mailbox's batch goes on (its
        claims' leases outlast a batch)."""
        if not self._time_to_look():
            return
        self._take_over_from_gone_workers()
        if serve:
            self._serve_freed()

    def send_for(self, mailbox_id: int) -> int:
        """Send a mailbox's due steps while its pacing allows, up to SEND_BATCH in this pass,
        so housekeeping runs between batches; returns how many were handed over.

        One call at a time, each after the answer to the one before. A send's record is
        committed together with the next claim's gate, right before that claim's call: one
        commit per message rather than two."""
        handed = 0
        began: dict[int, datetime] = {}
        gaps: dict[int, timedelta] = {}
        unrecorded: list[tuple[Claim, SentMessage]] = []  # the last send, until the next gate
        try:
            while handed < SEND_BATCH:
                # Claim: ledger rows written and each message composed, in one commit.
                claimed = self._claim_batch([mailbox_id], SEND_BATCH - handed)
                if not claimed.ready:
                    break
                gaps = claimed.gaps
                credential = self.credentials.of(mailbox_id)
                for index, ready in enumerate(claimed.ready):
                    if self._time_to_look():
                        self._record_alone(unrecorded)
                        self._look_for_gone_workers()
                    began[mailbox_id] = utcnow()
                    outcome = self._send_after(ready, credential, unrecorded)
                    if isinstance(outcome, Sent):
                        unrecorded.append((ready.claim, outcome.message))
                    elif not self.outcomes.record(ready.claim, outcome):
                        # The host refused or asked us to wait: the rest go back in line and
                        # the next pass looks at the mailbox afresh.
                        for rest in claimed.ready[index + 1 :]:
                            self.outcomes.record(rest.claim, NotSent("an earlier send did not go"))
                        return handed + index + 1
                # Recorded before claiming again: the claim then sees where each recipient is.
                self._record_alone(unrecorded)
                handed += len(claimed.ready)
                if claimed.paced(mailbox_id):
                    # The mailbox keeps a gap between sends: its slot is now taken until the
                    # gap has passed, so claiming again would only spend a whole claim's
                    # statements to learn that. The next pass, which starts at once, looks
                    # at it again.
                    break
        finally:
            try:
                self._record_alone(unrecorded)
            finally:
                self._release([mailbox_id], began, gaps)
        return handed

    def send_paced(self, mailbox_ids: list[int]) -> int:
        """One send for each of these mailboxes that keep a gap between sends: their sender
        leases taken in one statement, their inboxes checked and their steps claimed (one
        each) in one transaction, then gate, send and record one at a time. Returns how many
        were handed over.

        Claimed together, a paced mailbox's send costs the claim's statements once per
        PACED_GROUP rather than once per message. The last of a group goes a little after
        its claim (after the sends before it), so each mailbox's next slot is counted from
        when its send began (`_release`), not from the claim."""
        now = utcnow()
        with session_scope(self.factory) as db:
            mine = repo.take_senders(db, mailbox_ids, self.worker_id, now, now + self.policy.lease)
        if not mine:
            return 0
        began: dict[int, datetime] = {}
        claimed = Claimed()
        try:
            claimed = self._claim_batch(mine, 1)
            # One claim per mailbox: their host calls go several at a time. As many as there
            # is room for are gated together right before their calls start, and those that
            # finished together are recorded together, all on this thread.
            waiting = list(claimed.ready)
            with self.host_calls.window(self.outcomes.record_all) as flight:
                while waiting:
                    # Gone workers' mailboxes are taken over now but served after this
                    # window: their sends must not keep these calls' records waiting.
                    self._look_for_gone_workers(serve=False)
                    room = flight.make_room()
                    batch, waiting = waiting[:room], waiting[room:]
                    for ready in batch:
                        began[ready.claim.mailbox_id] = utcnow()
                    through, refused = self._through_gates(batch)
                    for ready, prepared in through.items():
                        credential = self.credentials.of(ready.claim.mailbox_id)
                        flight.add(ready.claim, partial(self.hand_over, prepared, credential))
                    # Recorded once the calls through the gate are on their way.
                    self.outcomes.record_all(refused)
        finally:
            self._release(mine, began, claimed.gaps)
        self._serve_freed()
        return len(began)

    def _through_gates(
        self, batch: list[Ready]
    ) -> tuple[dict[Ready, Prepared], list[tuple[Claim, Outcome]]]:
        """Gate these claims in one commit, those that cannot go recorded first. Returns the
        messages of those through the gate, and what became of those the gate refused (for
        the caller to record once the others' calls have started: nothing gated waits)."""
        stopped: list[tuple[Claim, Outcome]] = []
        gated: list[tuple[Ready, Prepared]] = []
        for ready in batch:
            match self._ready_to_gate(ready):
                case Prepared() as prepared:
                    gated.append((ready, prepared))
                case outcome:
                    stopped.append((ready.claim, outcome))
        self.outcomes.record_all(stopped)
        opened = self._open_gates([ready.claim for ready, _ in gated]) if gated else set()
        through = {ready: prepared for ready, prepared in gated if ready.claim.ledger_id in opened}
        refused: list[tuple[Claim, Outcome]] = [
            (ready.claim, NotSent(GATE_REFUSED)) for ready, _ in gated if ready not in through
        ]
        return through, refused

    def _release(
        self,
        mailbox_ids: list[int],
        began: dict[int, datetime],
        gaps: dict[int, timedelta],
    ) -> None:
        """Done with these mailboxes for now: their sender leases released and, for those
        that keep a gap, the next slot counted from when their last send began."""
        slots = {m: at + gaps[m] for m, at in began.items() if gaps.get(m)}
        with session_scope(self.factory) as db:
            repo.push_slots(db, slots)
            repo.release_sender(db, mailbox_ids, self.worker_id)

    def run_until_idle(self, limit: int = 10_000) -> int:
        """Passes until nothing is due now (tests and the CLI's one-shot mode)."""
        passes = 0
        while passes < limit:
            passes += 1
            if self.run_once() > utcnow():
                break
        return passes

    def _due_groups(self, now: datetime) -> list[tuple[list[int], bool]]:
        """The mailboxes to send for in this pass, longest waiting first: each mailbox that
        sends without a gap on its own (a batch of up to SEND_BATCH), and runs of up to
        PACED_GROUP mailboxes that keep a gap (one send each) together."""
        with session_scope(self.factory) as db:
            due = repo.sending_mailboxes(db, self.worker_id, now)
        groups: list[tuple[list[int], bool]] = []
        run: list[int] = []
        for mailbox in due:
            host = self.services.mail_host(mailbox.provider)
            if mailbox.min_gap_seconds or host.min_send_interval:
                run.append(mailbox.id)
                if len(run) == PACED_GROUP:
                    groups.append((run, True))
                    run = []
                continue
            if run:
                groups.append((run, True))
                run = []
            groups.append(([mailbox.id], False))
        if run:
            groups.append((run, True))
        return groups

    def _next_wake(self, walked_at: datetime) -> datetime:
        """The soonest moment a campaign has a step due, its window is open and its pacing
        allows a send (a mailbox left out of the walk: when it may have one), a send of
        unknown outcome may be looked for in Sent, or an inbox is due a read. A moment that
        has come already counts as now if it came after the pass's walk (`walked_at`), which
        could not see it (with thousands of paced mailboxes, one's slot comes in almost any
        few milliseconds), and as a little later than now if the walk saw it and it could not
        go; each on its own, so one stuck step never delays a slot that came since."""
        now = utcnow()
        with session_scope(self.factory) as db:
            candidates = [
                _may_go_at(campaign, due, now)
                for campaign, due in repo.earliest_due_by_campaign(db, now)
            ]
            # Replies and bounces are read on time even when nothing is due to send.
            later = [
                repo.next_marked(db, now),
                repo.next_unsettled_at(db),
                self.inbound.next_read(db, now, gather=READ_GATHER),
                self.outcomes.next_look_again(),
            ]
        candidates += [moment for moment in later if moment is not None]

        def wake_for(moment: datetime) -> datetime:
            if moment > now:
                return moment
            return now if moment > walked_at else now + STUCK_RETRY

        return min([now + IDLE_WAKE, *map(wake_for, candidates)])

    def claim(self, mailbox_id: int, limit: int = 1) -> list[Ready]:
        """Claim the mailbox's earliest due steps, as many as its pacing, cap and schedules
        allow (one when a gap is kept between sends), each with its message composed."""
        return self._claim_batch([mailbox_id], limit).ready

    def _claim_batch(self, mailbox_ids: list[int], limit: int) -> Claimed:
        """`claim` for each of these mailboxes (up to `limit` steps each) in one transaction,
        after reading the inboxes that need it."""
        self.inbound.read_before_sending(mailbox_ids)
        try:
            with session_scope(self.factory) as db:
                return self._claim(db, mailbox_ids, limit)
        except (IntegrityError, OperationalError) as error:
            # Another worker claimed the same step, or the database was busy: try later.
            log.info(
                "claim_skipped",
                worker=self.worker_id,
                mailbox_ids=mailbox_ids,
                reason=type(error).__name__,
            )
            return Claimed()

    def _claim(self, db: Session, mailbox_ids: list[int], limit: int) -> Claimed:
        now = utcnow()
        mailboxes = repo.mailboxes_by_id(db, mailbox_ids)
        for loaded in mailboxes.values():
            self.credentials.note(loaded)
        counts = repo.sends_since_of(db, mailbox_ids, now - pacing.DAY)
        active = repo.active_campaigns_of(db, mailbox_ids)
        campaigns: dict[int, Campaign] = {}
        picked: dict[int, tuple[list[Enrollment], timedelta]] = {}
        # Mailboxes with nothing to send now (a full daily cap holds its mailbox already).
        idle: list[int] = []
        for mailbox_id in mailbox_ids:
            if (mailbox := mailboxes.get(mailbox_id)) is None:
                continue
            own = {
                c.id: c
                for c in active.get(mailbox_id, [])
                if pacing.campaign_window_opens(c, now) <= now
            }
            room = self._room_under_daily_cap(db, mailbox, counts.get(mailbox_id, (0, None)))
            if room <= 0:
                continue
            if not own:
                idle.append(mailbox_id)
                continue
            campaigns.update(own)
            gap = max(
                pacing.next_gap(mailbox.min_gap_seconds, self.rng),
                self.services.mail_host(mailbox.provider).min_send_interval,
            )
            picked[mailbox_id] = (self._due(db, mailbox, own, now, min(limit, room), gap), gap)
        # Earlier messages of the recipients' threads (a first email has none).
        history = repo.sent_rows(
            db, [e.id for due, _ in picked.values() for e in due if e.steps_sent]
        )
        chosen: list[Enrollment] = []
        gaps: dict[int, timedelta] = {}
        for mailbox_id, (due, gap) in picked.items():
            # A reply whose thread's last message has no known ids yet is not claimed (nor
            # does it take the mailbox's send slot): it is looked at again shortly.
            due = [
                e
                for e in due
                if not holds.still_held(e, now)
                and not self._thread_pending(e, campaigns, history, now)
            ]
            if not due:
                idle.append(mailbox_id)
            elif repo.take_send_slot(
                db,
                mailbox_id,
                self.worker_id,
                now,
                now + gap,
                now + self.policy.lease,
                read_by=now + self.policy.inbound_interval,
            ):
                chosen += due
                gaps[mailbox_id] = gap
        claimed = self._write_claims(db, chosen, campaigns, now)
        if idle:
            self._leave_out(db, idle, now)
        ready = [
            compose(
                row,
                enrollment,
                campaigns[row.campaign_id],
                step,
                mailboxes[campaigns[row.campaign_id].mailbox_id],
                history.get(enrollment.id, []),
                links=self.outcomes.links,
            )
            for row, enrollment, step in claimed
        ]
        return Claimed(ready, gaps)

    def _leave_out_unused(self) -> None:
        """Leave the mailboxes with no active campaign out of the walk until the horizon,
        at most once every UNUSED_LOOK: no claim does it, since the walk never returns them,
        and thousands of linked mailboxes with no campaign running would otherwise be looked
        at by every pass. A campaign becoming active clears its mailbox's mark at once
        (migration 0023's trigger), and the marks are worked out under `repo.hold_marks`
        as a claim's are, so one started meanwhile is seen."""
        now = utcnow()
        if now < self._next_unused_look:
            return
        self._next_unused_look = now + UNUSED_LOOK
        try:
            with session_scope(self.factory) as db:
                unused = repo.unmarked_without_campaign(db, now, UNUSED_BATCH)
            if len(unused) == UNUSED_BATCH:
                self._next_unused_look = now + UNUSED_MORE
            if unused:
                with session_scope(self.factory) as db:
                    self._leave_out(db, unused, now)
        except OperationalError as error:
            # The database was busy: these mailboxes are walked as before until next time.
            log.info("leave_out_unused_skipped", worker=self.worker_id, reason=str(error))

    @staticmethod
    def _leave_out(db: Session, idle: list[int], now: datetime) -> None:
        """Leave each mailbox with nothing to send now out of the walk until its first
        recipient may be due: the earliest due step of each active campaign, or its window's
        opening if later, at most NOTHING_DUE_HORIZON ahead. Not when something is due already
        but could not be claimed (a follow-up waiting for an inbox read): the mailbox is looked
        at again next pass. Worked out afresh once no change can be in progress
        (`repo.hold_marks`), and not for a mailbox where one is: it is looked at next pass."""
        held = repo.hold_marks(db, idle)
        if not held:
            return
        campaigns = repo.campaigns_to_mark(db, held)
        horizon = now + NOTHING_DUE_HORIZON
        until: dict[int, datetime] = {}
        for mailbox_id in held:
            moment = min(
                (
                    max(due, pacing.campaign_window_opens(campaign, now))
                    for campaign, due in campaigns.get(mailbox_id, [])
                    if due is not None
                ),
                default=horizon,
            )
            if moment > now:
                until[mailbox_id] = min(moment, horizon)
        if until:
            repo.leave_out_until(db, until)

    def _due(
        self,
        db: Session,
        mailbox: Mailbox,
        campaigns: dict[int, Campaign],
        now: datetime,
        room: int,
        gap: timedelta,
    ) -> list[Enrollment]:
        """The mailbox's earliest due recipients: one when it keeps a gap, else up to `room`."""
        size = room if not gap else 1
        zoned = any(c.recipient_time_zones for c in campaigns.values())
        # Recipients outside their own window are moved to its opening, a batch at a time, so
        # those behind them in due order are not kept waiting a pass each.
        fetch = max(size, ZONED_LOOKAHEAD) if zoned else size
        # A follow-up waits for a read of the inbox after it fell due (a reply stops it).
        enrollments = repo.due_enrollments(
            db, list(campaigns), now, fetch, read_through=mailbox.inbound_checked_at
        )
        if zoned:
            enrollments = [e for e in enrollments if self._in_window(e, campaigns, now)]
        return enrollments[:size]

    def _write_claims(
        self,
        db: Session,
        enrollments: list[Enrollment],
        campaigns: dict[int, Campaign],
        now: datetime,
    ) -> list[tuple[SendLedger, Enrollment, CampaignStep]]:
        """A claimed ledger row for each recipient's next step (a retried one reused)."""
        existing = repo.ledger_rows(db, [(e.id, e.steps_sent + 1) for e in enrollments])
        claimed: list[tuple[SendLedger, Enrollment, CampaignStep]] = []
        finished: set[int] = set()
        for enrollment in enrollments:
            campaign = campaigns[enrollment.campaign_id]
            position = enrollment.steps_sent + 1
            step = next((s for s in campaign.steps if s.position == position), None)
            row = existing.get((enrollment.id, position))
            if step is None:
                # The campaign was edited down to fewer steps: this recipient is done.
                lifecycle.enroll(enrollment, EnrollmentEvent.STEPS_RAN_OUT)
                enrollment.next_due_at = None
                if row is not None:
                    db.delete(row)
                finished.add(campaign.id)
                continue
            if row is None:
                row = SendLedger(
                    enrollment_id=enrollment.id,
                    campaign_id=enrollment.campaign_id,
                    mailbox_id=campaign.mailbox_id,
                    step_position=position,
                    tag=uuid.uuid4().hex,
                    attempts=0,
                )
                db.add(row)
            elif row.status is not LedgerStatus.RETRY:
                log.warning("claim_conflict", ledger_id=row.id, status=row.status.value)
                continue
            lifecycle.ledger(row, LedgerEvent.CLAIMED)
            row.worker = self.worker_id
            row.claimed_at = now
            row.lease_until = now + self.policy.lease
            row.not_before = enrollment.next_due_at
            row.attempts += 1
            enrollment.next_due_at = None
            claimed.append((row, enrollment, step))
        db.flush()
        for campaign_id in finished:
            outcomes.complete_if_finished(db, campaign_id)
        return claimed

    @staticmethod
    def _in_window(enrollment: Enrollment, campaigns: dict[int, Campaign], now: datetime) -> bool:
        """Whether the recipient's window (in their own time zone) is open; if not, they are
        due when it opens (kept at or after a hold's end, which the claim checks anyway)."""
        opens = pacing.recipient_window_opens(campaigns[enrollment.campaign_id], enrollment, now)
        if opens <= now:
            return True
        enrollment.next_due_at = max(opens, enrollment.held_until or opens)
        return False

    @staticmethod
    def _thread_pending(
        enrollment: Enrollment,
        campaigns: dict[int, Campaign],
        history: dict[int, list[SendLedger]],
        now: datetime,
    ) -> bool:
        steps = campaigns[enrollment.campaign_id].steps
        position = enrollment.steps_sent + 1
        if position > len(steps):
            return False
        _in_thread, reply_to = thread_so_far(steps, position, history.get(enrollment.id, []))
        if reply_to is None or not waits_for_thread(reply_to):
            return False
        enrollment.next_due_at = now + THREAD_WAIT
        return True

    @staticmethod
    def _room_under_daily_cap(
        db: Session, mailbox: Mailbox, sent: tuple[int, datetime | None]
    ) -> int:
        """How many more sends the mailbox's rolling daily cap allows now, given its sends in
        the last day and the oldest of them."""
        count, oldest = sent
        if count >= mailbox.daily_cap and oldest is not None:
            repo.hold_mailbox(db, mailbox.id, oldest + pacing.DAY)
        return mailbox.daily_cap - count

    def deliver(self, ready: Ready, credential: HeldCredential) -> bool:
        """Gate, send, record: the life of one claim after it was composed.

        False when the mailbox should send nothing more in this pass.
        """
        outcome = self.send(ready, credential)
        return self.outcomes.record(ready.claim, outcome)

    def send(self, ready: Ready, credential: HeldCredential) -> Outcome:
        """Through the gate (committed on its own, right before the host is called), then to
        the host: what became of the claim. Nothing is recorded here."""
        return self._send_after(ready, credential, [])

    def _send_after(
        self, ready: Ready, credential: HeldCredential, unrecorded: list[tuple[Claim, SentMessage]]
    ) -> Outcome:
        """`send`, recording the mailbox's last send (taken from `unrecorded`) in the gate's
        commit, or on its own if this claim does not reach the gate."""
        prepared = self._ready_to_gate(ready)
        previous = unrecorded.pop() if unrecorded else None
        if not isinstance(prepared, Prepared):
            if previous is not None:
                self.outcomes.record_sent(*previous)
            return prepared
        if not self._gate_after(ready.claim, previous):
            return NotSent(GATE_REFUSED)
        return self.hand_over(prepared, credential)

    def _gate_after(self, claim: Claim, previous: tuple[Claim, SentMessage] | None) -> bool:
        """Open a claim's gate, the send before it (if any) recorded in the same commit. If
        that commit fails, the send is recorded on its own first (raising if it cannot be),
        then the gate is tried on its own."""
        if previous is not None:
            try:
                with session_scope(self.factory) as db:
                    self.outcomes.record_sent_in(db, *previous)
                    return bool(self._gate_in(db, [claim]))
            except Exception:
                log.warning(
                    "record_with_gate_failed", ledger_id=previous[0].ledger_id, exc_info=True
                )
                self.outcomes.record_sent(*previous)
        return bool(self._open_gates([claim]))

    def _record_alone(self, unrecorded: list[tuple[Claim, SentMessage]]) -> None:
        """Record the send still waiting for the next gate, in its own commit."""
        while unrecorded:
            self.outcomes.record_sent(*unrecorded.pop())

    def _ready_to_gate(self, ready: Ready) -> Prepared | Outcome:
        """The claim's message if it may try the gate now, else what became of it."""
        if ready.prepared is None and ready.wait_until is not None:
            return NotSent(ready.problem, until=ready.wait_until)
        if ready.prepared is None:
            return GaveUp(ready.problem)
        if not self.liveness.held():
            # Others may be taking this worker's claims and mailboxes over already.
            return NotSent("this worker lost its liveness lock", stop=True)
        return ready.prepared

    def hand_over(self, prepared: Prepared, credential: HeldCredential) -> Outcome:
        """The host call of a message through the gate (on a pool thread when several are in
        flight: no database work here but the credential's own)."""
        provider = self.services.mail_host(prepared.provider)
        try:
            sent = credential.call(
                lambda held: provider.send(
                    held, prepared.mime, tag=prepared.tag, thread_id=prepared.thread_id
                )
            )
        except MailboxNotConnected:
            return NotSent("the account is not connected", stop=True)
        except ProviderError as error:
            return Refused(error)
        return Sent(sent)

    def _open_gates(self, claims: list[Claim]) -> set[int]:
        """The last check before the provider is called, committed on its own: the ledger
        ids of the claims that may go."""
        for _attempt in range(3):
            try:
                with session_scope(self.factory) as db:
                    return self._gate_in(db, claims)
            except OperationalError:
                continue
        return set()

    def _gate_in(self, db: Session, claims: list[Claim]) -> set[int]:
        return repo.open_gates(
            db, [claim.ledger_id for claim in claims], self.worker_id, utcnow() + self.policy.lease
        )


def settle_in_flight(
    factory: sessionmaker[Session], campaign_ids: list[int], *, timeout: float = 30.0
) -> bool:
    """Wait until no send of these campaigns is being handed to a provider.

    Called after a pause commits, so that when the pause returns, nothing more goes out.
    """
    deadline = utcnow() + timedelta(seconds=timeout)
    while utcnow() < deadline:
        with session_scope(factory) as db:
            if repo.in_flight(db, campaign_ids, utcnow()) == 0:
                return True
        threading.Event().wait(0.05)
    return False
