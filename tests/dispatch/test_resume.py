"""Resume with foresight: the preview says what Resume will do, and Resume does exactly that.

Each catch-up choice is run across a pause that spans sending windows (and, for the shift, a
daylight-saving change in the campaign's time zone), then the dispatcher sends for real
through the sandbox: every (recipient, step) at most once, in the preview's order, never
outside the window.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.campaigns import service
from sendwell.campaigns.schedule import DAYS
from sendwell.db import session_scope
from sendwell.dispatch import engine, resuming
from sendwell.dispatch.resume import ResumePlan
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import InvalidInput
from sendwell.models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    LedgerStatus,
    PauseReason,
    User,
)
from tests.dispatch.conftest import SENDER, World

THREE_STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}, a quick question.", 0),
    ("", "Any thoughts, {{ first_name }}?", 2 * 24 * 60),
    ("", "Last note, {{ first_name }}.", 2 * 24 * 60),
]
DAY = timedelta(days=1)


def user_of(db: Session) -> User:
    found = db.scalars(select(User)).first()
    assert found is not None
    return found


def pause_since(world: World, campaign_id: int, paused_at: datetime) -> None:
    """Pause the campaign as its user would, as if that had happened at `paused_at`."""
    with session_scope(world.factory) as db:
        service.pause(db, user_of(db), campaign_id)
    with session_scope(world.factory) as db:
        db.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(status_changed_at=paused_at)
        )


def set_due(world: World, campaign_id: int, due: dict[str, datetime]) -> None:
    with session_scope(world.factory) as db:
        for email, moment in due.items():
            db.execute(
                update(Enrollment)
                .where(Enrollment.campaign_id == campaign_id, Enrollment.email == email)
                .values(next_due_at=moment)
            )


def set_window(
    world: World, campaign_id: int, days: str, start: str | None, end: str | None, zone: str
) -> None:
    with session_scope(world.factory) as db:
        db.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(schedule_days=days, schedule_start=start, schedule_end=end, timezone=zone)
        )


def close_window_until_the_day_after_tomorrow(world: World, campaign_id: int, zone: str) -> None:
    """A window only on the weekday two days ahead (in `zone`), 09:00-17:00: closed now."""
    day = (utcnow().astimezone(ZoneInfo(zone)) + 2 * DAY).date()
    set_window(world, campaign_id, DAYS[day.weekday()], "09:00", "17:00", zone)


def open_window_today(world: World, campaign_id: int, zone: str) -> None:
    set_window(
        world, campaign_id, DAYS[utcnow().astimezone(ZoneInfo(zone)).weekday()], None, None, zone
    )


def preview(world: World, campaign_id: int, **choice: object) -> ResumePlan:
    with session_scope(world.factory) as db:
        return resuming.resume_preview(db, user_of(db), campaign_id, **choice)  # type: ignore[arg-type]


def resume(world: World, campaign_id: int, **choice: object) -> None:
    with session_scope(world.factory) as db:
        resuming.resume(db, user_of(db), campaign_id, **choice)  # type: ignore[arg-type]


def order_sent(world: World, campaign_id: int) -> list[tuple[str, int]]:
    """(recipient, step) in the order the sandbox received them; each at most once."""
    return list(world.sent_by_step(campaign_id))


def resumed_reason(world: World, campaign_id: int) -> str:
    with session_scope(world.factory) as db:
        return (
            db.scalars(
                select(CampaignEvent.reason)
                .where(CampaignEvent.campaign_id == campaign_id, CampaignEvent.kind == "resumed")
                .order_by(CampaignEvent.id.desc())
            ).first()
            or ""
        )


def planned(plan: ResumePlan) -> list[tuple[str, int]]:
    return [(send.email, send.step) for send in plan.due_now]


def test_catch_up_waits_for_the_window_then_sends_the_overdue_steps_in_the_previews_order(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mailbox found quiet is looked at again at the window's opening, not an hour later.
    monkeypatch.setattr(engine, "NOTHING_DUE_HORIZON", timedelta(days=7))
    people = ["ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com"]
    campaign_id = world.campaign(THREE_STEPS, people)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    assert set(order_sent(world, campaign_id)) == {(p, 1) for p in people}

    # Paused five days ago; meanwhile Dee replied (read while paused), Ann's and Bob's second
    # step fell due, Cy's is still to come.
    now = utcnow()
    pause_since(world, campaign_id, now - 5 * DAY)
    first = world.sent_by_step(campaign_id)[("dee@example.com", 1)]
    world.sandbox.admin(
        "reply", {"mailbox": SENDER, "to_message_id": first["headers"]["Message-ID"]}
    )
    dispatcher.run_until_idle()
    assert world.enrollment(campaign_id, "dee@example.com").status is EnrollmentStatus.REPLIED
    set_due(
        world,
        campaign_id,
        {
            "ann@example.com": now - 4 * DAY,
            "bob@example.com": now - DAY,
            "cy@example.com": now + DAY,
        },
    )
    # A window in a zone ahead of UTC by half a day, on a weekday two days ahead only: closed
    # now, across the date line from UTC.
    zone = ZoneInfo("Pacific/Auckland")
    day = (now.astimezone(zone) + 2 * DAY).date()
    set_window(world, campaign_id, DAYS[day.weekday()], "09:00", "17:00", "Pacific/Auckland")
    opens = datetime(day.year, day.month, day.day, 9, 0, tzinfo=zone)

    plan = preview(world, campaign_id, catch_up="catch_up")
    assert planned(plan) == [("ann@example.com", 2), ("bob@example.com", 2)]
    assert plan.first_at == plan.last_at == opens
    assert plan.arrived == {"replied": 1, "bounced": 0, "unsubscribed": 0}
    assert (plan.later, plan.shifted, plan.skipped) == (1, 0, [])
    assert any("window is closed" in note for note in plan.notes), plan.notes

    resume(world, campaign_id, catch_up="catch_up")
    sent_before = len(world.sent())
    dispatcher.run_until_idle()
    monkeypatch.setattr(engine, "IDLE_WAKE", timedelta(days=7))
    # Asleep until the window opens, not before (its inboxes read weekly: no read due first).
    assert world.dispatcher(inbound_interval=timedelta(days=7)).run_once() == opens
    assert len(world.sent()) == sent_before

    # The window opens: the two overdue steps go, in the preview's order, and nothing else.
    today = DAYS[utcnow().astimezone(zone).weekday()]
    set_window(world, campaign_id, today, None, None, "Pacific/Auckland")
    dispatcher.run_until_idle()
    assert order_sent(world, campaign_id)[len(people) :] == planned(plan)
    reason = resumed_reason(world, campaign_id)
    assert "Catch up at the normal pace" in reason
    assert "2 due now (step 2: 2)" in reason

    # Cy's step comes when due, once; Dee (replied) gets nothing more.
    world.due_now(campaign_id, ["cy@example.com"])
    dispatcher.run_until_idle()
    assert ("cy@example.com", 2) in world.sent_by_step(campaign_id)
    assert not {("dee@example.com", 2), ("dee@example.com", 3)} & set(
        world.sent_by_step(campaign_id)
    )


def last_dst_change(zone: ZoneInfo, before: datetime) -> datetime:
    """The most recent moment before `before` when the zone's offset from UTC changed."""
    moment = before
    offset = moment.astimezone(zone).utcoffset()
    while moment.astimezone(zone).utcoffset() == offset:
        moment -= timedelta(hours=6)
    while (moment + timedelta(minutes=30)).astimezone(zone).utcoffset() != offset:
        moment += timedelta(minutes=30)
    return moment


def test_shift_keeps_each_recipients_remaining_wait_across_a_daylight_saving_change(
    world: World,
) -> None:
    people = ["pia@example.com", "quinn@example.com", "ray@example.com"]
    campaign_id = world.campaign(THREE_STEPS, people)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()

    zone = ZoneInfo("America/New_York")
    now = utcnow()
    change = last_dst_change(zone, now)
    paused_at = change - DAY  # the pause spans the change and many daily windows
    pause_since(world, campaign_id, paused_at)
    set_window(world, campaign_id, "", None, None, "America/New_York")
    due = {
        # Overdue when it paused (waiting for its turn): due as soon as it resumes.
        "pia@example.com": paused_at - timedelta(hours=1),
        # Fell due two hours into the pause: two hours after the resume.
        "quinn@example.com": paused_at + timedelta(hours=2),
        # Due after the pause anyway: moved by the pause too.
        "ray@example.com": now + DAY,
    }
    set_due(world, campaign_id, due)

    plan = preview(world, campaign_id, catch_up="shift")
    length = plan.now - paused_at
    assert planned(plan) == [("pia@example.com", 2)]
    assert plan.shifted == 3
    assert plan.later == 2
    assert plan.later_next == due["quinn@example.com"] + length

    resume(world, campaign_id, catch_up="shift")
    moved = {p: world.enrollment(campaign_id, p).next_due_at for p in people}
    resumed_at = resume_time(world, campaign_id)
    for person in ("quinn@example.com", "ray@example.com"):
        # The wait left at the pause is the wait left at the resume, to the second.
        waited = due[person] - paused_at
        left = moved[person] - resumed_at  # type: ignore[operator]
        assert abs(left - waited) < timedelta(seconds=2), (person, left, waited)
    # Outside its window the shifted step waits; when the window opens it goes.
    close_window_until_the_day_after_tomorrow(world, campaign_id, "America/New_York")
    dispatcher.run_until_idle()
    assert order_sent(world, campaign_id)[len(people) :] == []
    open_window_today(world, campaign_id, "America/New_York")
    dispatcher.run_until_idle()
    assert order_sent(world, campaign_id)[len(people) :] == [("pia@example.com", 2)]
    assert "moved later by" in resumed_reason(world, campaign_id)

    # When the others fall due, each step goes once, in order.
    world.due_now(campaign_id)
    dispatcher.run_until_idle()
    world.due_now(campaign_id)
    dispatcher.run_until_idle()
    assert set(world.sent_by_step(campaign_id)) == {(p, s) for p in people for s in (1, 2, 3)}


def resume_time(world: World, campaign_id: int) -> datetime:
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.status is CampaignStatus.ACTIVE
        return campaign.status_changed_at


FIVE_STEPS = [
    service.StepIn("Hello {{ first_name }}", "Hi {{ first_name }}.", 0),
    service.StepIn("", "Any thoughts?", 3 * 24 * 60),
    service.StepIn("", "Following up.", 3 * 24 * 60),
    service.StepIn("A new idea, {{ first_name }}", "Something else.", 2 * 24 * 60, new_thread=True),
    service.StepIn("", "Last note.", 2 * 24 * 60),
]


def test_skip_moves_past_steps_overdue_by_more_than_the_days_but_never_a_thread_start(
    world: World,
) -> None:
    people = ["uma@example.com", "vic@example.com", "wes@example.com", "xia@example.com"]
    campaign_id = world.campaign(FIVE_STEPS, people)
    world.postpone(campaign_id, ["wes@example.com"], 30 * DAY)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    for _step in (2, 3, 4):  # Xia reaches her last step
        world.due_now(campaign_id, ["xia@example.com"])
        dispatcher.run_until_idle()
    assert world.enrollment(campaign_id, "xia@example.com").steps_sent == 4

    now = utcnow()
    pause_since(world, campaign_id, now - 13 * DAY)
    set_due(
        world,
        campaign_id,
        {
            "uma@example.com": now - 12 * DAY,  # step 2: skipped, and step 3 after it
            "vic@example.com": now - 3 * DAY,  # step 2: overdue, not by more than 7 days
            "wes@example.com": now - 10 * DAY,  # step 1: begins the thread, never skipped
            "xia@example.com": now - 10 * DAY,  # step 5, her last: skipped, she is done
        },
    )

    plan = preview(world, campaign_id, catch_up="skip", skip_days=7)
    skipped = {s.email: (s.steps, s.next_step) for s in plan.skipped}
    assert skipped == {"uma@example.com": ((2, 3), 4), "xia@example.com": ((5,), None)}
    # Uma's step 4 starts a new thread: it is not skipped though 7 days overdue; it goes.
    assert planned(plan) == [
        ("wes@example.com", 1),
        ("uma@example.com", 4),
        ("vic@example.com", 2),
    ]

    close_window_until_the_day_after_tomorrow(world, campaign_id, "Asia/Kolkata")
    resume(world, campaign_id, catch_up="skip", skip_days=7)
    sent_before = len(world.sent())
    dispatcher.run_until_idle()
    assert len(world.sent()) == sent_before  # nothing outside the window
    open_window_today(world, campaign_id, "Asia/Kolkata")
    dispatcher.run_until_idle()
    assert order_sent(world, campaign_id)[-3:] == planned(plan)
    rows = {
        (world_email(world, r.enrollment_id), r.step_position): r for r in world.ledger(campaign_id)
    }
    for key in (("uma@example.com", 2), ("uma@example.com", 3), ("xia@example.com", 5)):
        assert rows[key].status is LedgerStatus.SKIPPED, key
        assert "overdue by" in rows[key].error
    xia = world.enrollment(campaign_id, "xia@example.com")
    assert xia.status is EnrollmentStatus.COMPLETED
    assert "Skipped" in xia.status_reason
    assert "3 steps skipped for 2 recipients" in resumed_reason(world, campaign_id)

    # A skipped step never goes later; Uma's last step answers the thread step 4 began.
    world.due_now(campaign_id)
    dispatcher.run_until_idle()
    by_step = world.sent_by_step(campaign_id)
    assert ("uma@example.com", 2) not in by_step
    assert ("uma@example.com", 3) not in by_step
    assert ("xia@example.com", 5) not in by_step
    last = by_step[("uma@example.com", 5)]
    assert last["subject"] == "Re: A new idea, uma"
    assert last["thread_id"] == by_step[("uma@example.com", 4)]["thread_id"]


def world_email(world: World, enrollment_id: int) -> str:
    with session_scope(world.factory) as db:
        found = db.get(Enrollment, enrollment_id)
        assert found is not None
        return found.email


def test_the_preview_times_follow_the_accounts_pace(world: World) -> None:
    people = [f"p{i}@example.com" for i in range(4)]
    campaign_id = world.campaign(THREE_STEPS[:1], people, start=False, min_gap_seconds=1)
    with session_scope(world.factory) as db:
        service.start(db, user_of(db), campaign_id)
    pause_since(world, campaign_id, utcnow() - timedelta(minutes=30))

    plan = preview(world, campaign_id)
    assert [p for p, _step in planned(plan)] == people
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(plan.due_now)]
    assert gaps == [1.125] * 3  # the account's 1 s gap at its average stretch

    resume(world, campaign_id)
    dispatcher = world.dispatcher()
    started = time.monotonic()
    while len(world.sent()) < len(people) and time.monotonic() - started < 20:
        wake = dispatcher.run_once()
        time.sleep(max(0.0, min((wake - utcnow()).total_seconds(), 0.5)))
    assert [p for p, _step in order_sent(world, campaign_id)] == people
    # The account's pace held as estimated: a gap of at least its 1 s between claims (how
    # much more depends on the stretch and on how busy this machine is).
    claims = sorted(row.claimed_at for row in world.ledger(campaign_id) if row.claimed_at)
    assert len(claims) == len(people)
    assert all(b - a >= timedelta(seconds=1) for a, b in itertools.pairwise(claims)), claims


def test_a_bad_choice_is_refused_with_the_reason_and_changes_nothing(world: World) -> None:
    campaign_id = world.campaign(THREE_STEPS, ["ann@example.com"])
    world.dispatcher().run_until_idle()
    pause_since(world, campaign_id, utcnow() - DAY)
    for choice, words in (
        ({"catch_up": "later"}, "Choose how to catch up"),
        ({"catch_up": "skip", "skip_days": "0"}, "Skip days must be a whole number from 1"),
        ({"catch_up": "skip", "skip_days": "ten"}, "Skip days must be a whole number from 1"),
    ):
        with pytest.raises(InvalidInput, match=words):
            resume(world, campaign_id, **choice)
    with session_scope(world.factory) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.status is CampaignStatus.PAUSED
    # Skip days typed beside another choice are not held against it.
    resume(world, campaign_id, catch_up="shift", skip_days="ten")
    assert resume_time(world, campaign_id)


def test_the_api_previews_each_choice_and_resumes_with_the_one_asked_for(world: World) -> None:
    people = ["ann@example.com", "bob@example.com"]
    campaign_id = world.campaign(THREE_STEPS, people)
    world.dispatcher().run_until_idle()
    now = utcnow()
    pause_since(world, campaign_id, now - 2 * DAY)
    set_due(world, campaign_id, {"ann@example.com": now - DAY, "bob@example.com": now + DAY})
    with session_scope(world.factory) as db:
        _token, plaintext = accounts.create_api_token(db, user_of(db), "resume test")
    auth = {"Authorization": f"Bearer {plaintext}"}
    base = f"/api/v1/campaigns/{campaign_id}"

    caught_up = world.client.get(f"{base}/resume-preview", headers=auth)
    assert caught_up.status_code == 200, caught_up.text
    body = caught_up.json()
    assert (body["catch_up"], body["due_now"], body["later"]) == ("catch_up", 1, 1)
    assert [(o["email"], o["step"]) for o in body["order"]] == [("ann@example.com", 2)]
    assert body["due_now_by_step"] == {"2": 1}
    assert body["arrived_during_pause"] == {"replied": 0, "bounced": 0, "unsubscribed": 0}

    shifted = world.client.get(f"{base}/resume-preview?catch_up=shift", headers=auth).json()
    assert (shifted["due_now"], shifted["shifted"], shifted["later"]) == (0, 2, 2)
    refused = world.client.get(f"{base}/resume-preview?catch_up=skip&skip_days=0", headers=auth)
    assert refused.status_code == 422
    assert "Skip days must be a whole number from 1 to 365." in refused.text

    resumed = world.client.post(f"{base}/resume", json={"catch_up": "shift"}, headers=auth)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "active"
    assert world.enrollment(campaign_id, "ann@example.com").next_due_at > utcnow()  # type: ignore[operator]
    again = world.client.get(f"{base}/resume-preview", headers=auth)
    assert again.status_code == 409
    assert "Only a paused campaign can be resumed." in again.json()["error"]["message"]

    # The campaign's own default, kept when a replace leaves it out.
    campaign = world.client.get(base, headers=auth).json()
    assert (campaign["catch_up"], campaign["catch_up_skip_days"]) == ("catch_up", 7)
    world.client.post(f"{base}/pause", headers=auth)
    replace = {
        "name": "Outreach",
        "mailbox_id": campaign["mailbox_id"],
        "steps": [
            {k: s[k] for k in ("subject", "body", "delay_minutes", "new_thread")}
            for s in campaign["steps"]
        ],
    }
    changed = world.client.put(
        base, json={**replace, "catch_up": "skip", "catch_up_skip_days": 3}, headers=auth
    )
    assert changed.status_code == 200, changed.text
    kept = world.client.put(base, json=replace, headers=auth).json()
    assert (kept["catch_up"], kept["catch_up_skip_days"]) == ("skip", 3)
    assert world.client.get(f"{base}/resume-preview", headers=auth).json()["catch_up"] == "skip"


def test_resume_all_previews_and_resumes_every_campaign_the_account_change_paused(
    world: World,
) -> None:
    first = world.campaign(THREE_STEPS, ["ann@example.com"])
    second = world.campaign(THREE_STEPS, ["bob@example.com"])
    world.dispatcher().run_until_idle()
    mailbox_id = world.mailbox_id()
    with session_scope(world.factory) as db:
        service.pause_campaigns_for_mailbox(db, mailbox_id, PauseReason.MAILBOX_REAUTHENTICATED)
    with session_scope(world.factory) as db:
        _token, plaintext = accounts.create_api_token(db, user_of(db), "resume test")
    auth = {"Authorization": f"Bearer {plaintext}"}

    shown = world.client.get(
        f"/api/v1/mailboxes/{mailbox_id}/resume-preview?catch_up=shift", headers=auth
    )
    assert shown.status_code == 200, shown.text
    assert sorted(p["campaign_id"] for p in shown.json()) == sorted([first, second])
    assert {p["preview"]["catch_up"] for p in shown.json()} == {"shift"}
    resumed = world.client.post(
        f"/api/v1/mailboxes/{mailbox_id}/resume-campaigns",
        json={"catch_up": "shift"},
        headers=auth,
    )
    assert sorted(resumed.json()) == sorted([first, second])
    assert "Shift every pending step" in resumed_reason(world, first)


def test_a_recipient_held_after_an_automatic_reply_is_shown_and_not_sent_to(world: World) -> None:
    people = ["ann@example.com", "bob@example.com"]
    campaign_id = world.campaign(THREE_STEPS, people)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    now = utcnow()
    pause_since(world, campaign_id, now - 2 * DAY)
    first = world.sent_by_step(campaign_id)[("ann@example.com", 1)]
    world.sandbox.admin(
        "reply",
        {
            "mailbox": SENDER,
            "to_message_id": first["headers"]["Message-ID"],
            "from": "ann@example.com",
            "subject": "Automatic reply: Hello ann",
            "headers": {"Auto-Submitted": "auto-replied"},
        },
    )
    dispatcher.run_until_idle()  # replies are read while the campaign is paused
    set_due(world, campaign_id, dict.fromkeys(people, now - DAY))

    plan = preview(world, campaign_id)
    assert [h.email for h in plan.held] == ["ann@example.com"]
    assert plan.held[0].until > utcnow() + 2 * DAY
    assert planned(plan) == [("bob@example.com", 2)]
    assert plan.later == 1

    resume(world, campaign_id)
    dispatcher.run_until_idle()
    assert set(world.sent_by_step(campaign_id)) == {(p, 1) for p in people} | {
        ("bob@example.com", 2)
    }
