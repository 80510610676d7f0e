"""Campaign rules: the status machine and its events, editing, duplicating, validation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from sendwell.accounts import service as accounts
from sendwell.campaigns import service, validation
from sendwell.campaigns.recipients import RecipientIn, add_recipients
from sendwell.campaigns.schedule import parse_schedule
from sendwell.campaigns.templates import TemplateProblem
from sendwell.db import make_session_factory
from sendwell.dispatch import resuming
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, InvalidInput, NotFound
from sendwell.models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    CampaignStep,
    Enrollment,
    EnrollmentStatus,
    Mailbox,
    MailboxStatus,
    PauseReason,
    Role,
    User,
)
from tests.conftest import STRONG_PASSWORD

# Helpers shared with test_api.py -------------------------------------------------------------


def make_user(db: Session, email: str = "ada@example.com", role: Role = Role.ADMIN) -> User:
    """The first user becomes the workspace admin; later ones get ``role``."""
    return accounts.create_user(db, email=email, password=STRONG_PASSWORD, role=role)


def make_mailbox(
    db: Session,
    owner: User,
    email: str = "ada@gmail.test",
    status: MailboxStatus = MailboxStatus.CONNECTED,
) -> Mailbox:
    mailbox = Mailbox(
        workspace_id=owner.workspace_id,
        owner_id=owner.id,
        provider="google",
        subject=f"subject-{email}",
        email=email,
        status=status,
        display_name="Ada Lovelace",
        signature="-- Ada",
    )
    db.add(mailbox)
    db.flush()
    return mailbox


def two_steps() -> list[service.StepIn]:
    return [
        service.StepIn("Hi {{ first_name | default('there') }}", "Hello from {{ sender_name }}"),
        service.StepIn("", "Following up, {{ full_name | default('friend') }}", 3 * 24 * 60),
    ]


def make_campaign(
    db: Session,
    user: User,
    mailbox: Mailbox,
    *,
    steps: list[service.StepIn] | None = None,
    name: str = "Backend engineers",
    start_delay_minutes: int = 20,
) -> Campaign:
    return service.create_campaign(
        db,
        user,
        name=name,
        mailbox_id=mailbox.id,
        steps=two_steps() if steps is None else steps,
        start_delay_minutes=start_delay_minutes,
    )


def add(db: Session, user: User, campaign: Campaign, *recipients: RecipientIn) -> None:
    rows = recipients or (RecipientIn("grace@example.com", first_name="Grace"),)
    report = add_recipients(db, user, campaign.id, rows)
    assert report.added == len(rows), report.skipped


def events(db: Session, campaign_id: int) -> list[CampaignEvent]:
    return list(
        db.scalars(
            select(CampaignEvent)
            .where(CampaignEvent.campaign_id == campaign_id)
            .order_by(CampaignEvent.id)
        )
    )


def fresh(db: Session, campaign_id: int) -> Campaign:
    db.expire_all()
    campaign = db.get(Campaign, campaign_id)
    assert campaign is not None
    return campaign


# Fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def user(db: Session) -> User:
    return make_user(db)


@pytest.fixture
def mailbox(db: Session, user: User) -> Mailbox:
    return make_mailbox(db, user)


@pytest.fixture
def ready(db: Session, user: User, mailbox: Mailbox) -> Campaign:
    """A draft with steps, a recipient and a connected mailbox: it can start."""
    campaign = make_campaign(db, user, mailbox)
    add(db, user, campaign)
    return campaign


# The status machine --------------------------------------------------------------------------

ACTIONS: dict[str, Callable[[Session, User, int], Campaign]] = {
    "start": service.start,
    "pause": service.pause,
    "resume": resuming.resume,
    "complete": lambda db, _user, campaign_id: service.complete(db, campaign_id),
    "reopen": lambda db, _user, campaign_id: service.reopen(db, campaign_id, "A bounce."),
    "archive": service.archive,
    "restore": service.restore,
}
EVENT_KIND = {
    "start": "started",
    "pause": "paused",
    "resume": "resumed",
    "complete": "completed",
    "reopen": "reopened",
    "archive": "archived",
    "restore": "restored",
}
LEGAL = {
    (CampaignStatus.DRAFT, "start"): CampaignStatus.ACTIVE,
    (CampaignStatus.ACTIVE, "pause"): CampaignStatus.PAUSED,
    (CampaignStatus.PAUSED, "resume"): CampaignStatus.ACTIVE,
    (CampaignStatus.ACTIVE, "complete"): CampaignStatus.COMPLETED,
    (CampaignStatus.COMPLETED, "reopen"): CampaignStatus.ACTIVE,
    (CampaignStatus.DRAFT, "archive"): CampaignStatus.ARCHIVED,
    (CampaignStatus.PAUSED, "archive"): CampaignStatus.ARCHIVED,
    (CampaignStatus.COMPLETED, "archive"): CampaignStatus.ARCHIVED,
    # Archived here without a status kept from before, never started: back to a draft.
    (CampaignStatus.ARCHIVED, "restore"): CampaignStatus.DRAFT,
}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("status", list(CampaignStatus))
def test_every_transition_legal_or_refused(
    db: Session, user: User, ready: Campaign, status: CampaignStatus, action: str
) -> None:
    ready.status = status
    if status is CampaignStatus.PAUSED:
        ready.pause_reason = PauseReason.USER
    db.flush()
    before = len(events(db, ready.id))
    expected = LEGAL.get((status, action))
    if expected is None:
        with pytest.raises(Conflict) as refused:
            ACTIONS[action](db, user, ready.id)
        assert refused.value.code == "illegal_transition"
        assert f"This one is {status.value}." in refused.value.message
        assert fresh(db, ready.id).status is status
        assert len(events(db, ready.id)) == before
        return
    result = ACTIONS[action](db, user, ready.id)
    assert result.status is expected
    assert fresh(db, ready.id).status is expected
    (event,) = events(db, ready.id)[before:]
    assert event.kind == EVENT_KIND[action]
    assert event.reason
    # The sending engine completes and reopens a campaign; people do everything else.
    assert event.actor_id == (None if action in ("complete", "reopen") else user.id)


def test_start_a_draft(db: Session, user: User, ready: Campaign) -> None:
    started = service.start(db, user, ready.id)
    assert started.status is CampaignStatus.ACTIVE
    assert started.started_at is not None
    event = events(db, ready.id)[-1]
    assert (event.kind, event.actor_id) == ("started", user.id)
    assert event.reason.startswith("Started; first emails from ")


def test_start_twice_is_a_conflict(db: Session, user: User, ready: Campaign) -> None:
    service.start(db, user, ready.id)
    with pytest.raises(Conflict, match="Only a draft campaign can be started"):
        service.start(db, user, ready.id)
    assert [e.kind for e in events(db, ready.id)].count("started") == 1


def test_pause_a_draft_is_a_conflict(db: Session, user: User, ready: Campaign) -> None:
    with pytest.raises(Conflict, match="Only an active campaign can be paused"):
        service.pause(db, user, ready.id)


def test_archive_active_says_pause_it_first(db: Session, user: User, ready: Campaign) -> None:
    service.start(db, user, ready.id)
    with pytest.raises(Conflict, match="pause it first"):
        service.archive(db, user, ready.id)
    assert fresh(db, ready.id).status is CampaignStatus.ACTIVE


def test_pause_and_resume_record_who_and_why(db: Session, user: User, ready: Campaign) -> None:
    service.start(db, user, ready.id)
    paused = service.pause(db, user, ready.id)
    assert (paused.status, paused.pause_reason) == (CampaignStatus.PAUSED, PauseReason.USER)
    assert service.pause_reason_words(paused) == "Paused by you."
    resumed = resuming.resume(db, user, ready.id)
    assert (resumed.status, resumed.pause_reason) == (CampaignStatus.ACTIVE, None)
    assert service.pause_reason_words(resumed) == ""
    history = [(e.kind, e.actor_id, e.reason) for e in events(db, ready.id)][-2:]
    assert history == [
        ("paused", user.id, "Paused by you."),
        ("resumed", user.id, "Resumed. Catch up at the normal pace. Nothing is due now."),
    ]


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (MailboxStatus.REAUTH_REQUIRED, "needs reauthentication"),
        (MailboxStatus.DISCONNECTED, "is disconnected"),
    ],
)
def test_resume_is_refused_while_the_mailbox_cannot_send(
    db: Session,
    user: User,
    mailbox: Mailbox,
    ready: Campaign,
    status: MailboxStatus,
    words: str,
) -> None:
    service.start(db, user, ready.id)
    service.pause(db, user, ready.id)
    mailbox.status = status
    db.flush()
    with pytest.raises(Conflict) as refused:
        resuming.resume(db, user, ready.id)
    assert refused.value.code == "mailbox_not_connected"
    assert refused.value.message.startswith(f"ada@gmail.test {words}.")
    assert "Reconnect it on the Settings tab" in refused.value.message
    assert fresh(db, ready.id).status is CampaignStatus.PAUSED
    assert "resumed" not in [e.kind for e in events(db, ready.id)]


def test_complete_has_no_actor(db: Session, user: User, ready: Campaign) -> None:
    service.start(db, user, ready.id)
    done = service.complete(db, ready.id)
    assert done.status is CampaignStatus.COMPLETED
    event = events(db, ready.id)[-1]
    assert (event.kind, event.actor_id, event.reason) == (
        "completed",
        None,
        "Every recipient has finished.",
    )


@pytest.mark.parametrize("status", [CampaignStatus.PAUSED, CampaignStatus.COMPLETED])
def test_archive_from_paused_and_completed(
    db: Session, user: User, ready: Campaign, status: CampaignStatus
) -> None:
    service.start(db, user, ready.id)
    if status is CampaignStatus.PAUSED:
        service.pause(db, user, ready.id)
    else:
        service.complete(db, ready.id)
    archived = service.archive(db, user, ready.id)
    assert (archived.status, archived.pause_reason) == (CampaignStatus.ARCHIVED, None)
    assert events(db, ready.id)[-1].kind == "archived"


def test_archive_a_draft(db: Session, user: User, ready: Campaign) -> None:
    assert service.archive(db, user, ready.id).status is CampaignStatus.ARCHIVED


@pytest.mark.parametrize(
    "status", [CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED]
)
def test_restore_returns_an_archived_campaign_to_the_status_it_had(
    db: Session, user: User, ready: Campaign, status: CampaignStatus
) -> None:
    if status is not CampaignStatus.DRAFT:
        service.start(db, user, ready.id)
        if status is CampaignStatus.PAUSED:
            service.pause(db, user, ready.id)
        else:
            service.complete(db, ready.id)
    assert service.archive(db, user, ready.id).archived_from is status
    restored = service.restore(db, user, ready.id)
    assert fresh(db, ready.id).status is status
    assert restored.archived_from is None
    assert restored.pause_reason is (PauseReason.USER if status is CampaignStatus.PAUSED else None)
    event = events(db, ready.id)[-1]
    assert (event.kind, event.actor_id) == ("restored", user.id)
    assert event.reason == f"Restored from the archive as {status.value}."
    with pytest.raises(Conflict, match="Only an archived campaign can be restored"):
        service.restore(db, user, ready.id)


def test_creation_is_an_event(db: Session, user: User, ready: Campaign) -> None:
    first = events(db, ready.id)[0]
    assert (first.kind, first.actor_id) == ("created", user.id)
    assert "Backend engineers" in first.reason


def test_start_schedules_unstarted_recipients_after_the_start_delay(
    db: Session, user: User, mailbox: Mailbox
) -> None:
    campaign = make_campaign(db, user, mailbox, start_delay_minutes=45)
    add(db, user, campaign, RecipientIn("a@example.com"), RecipientIn("b@example.com"))
    before = utcnow()
    service.start(db, user, campaign.id)
    after = utcnow()
    db.expire_all()
    rows = list(db.scalars(select(Enrollment).where(Enrollment.campaign_id == campaign.id)))
    assert len(rows) == 2
    for row in rows:
        assert row.status is EnrollmentStatus.NOT_STARTED
        assert row.next_due_at is not None
        assert before + timedelta(minutes=45) <= row.next_due_at <= after + timedelta(minutes=45)
    # Recipients added later wait for the same delay from when they are added.
    add(db, user, campaign, RecipientIn("c@example.com"))
    late = db.scalars(select(Enrollment).where(Enrollment.email == "c@example.com")).one()
    assert late.next_due_at is not None
    assert late.next_due_at >= after + timedelta(minutes=45)


def test_start_leaves_already_scheduled_recipients_alone(
    db: Session, user: User, ready: Campaign
) -> None:
    enrollment = db.scalars(select(Enrollment)).one()
    planned = utcnow() + timedelta(days=2)
    enrollment.next_due_at = planned
    db.flush()
    service.start(db, user, ready.id)
    db.expire_all()
    assert db.scalars(select(Enrollment)).one().next_due_at == planned


# Pausing every campaign of a mailbox ---------------------------------------------------------


def test_pause_campaigns_for_mailbox(db: Session, user: User, mailbox: Mailbox) -> None:
    other_mailbox = make_mailbox(db, user, "ada@contoso.outlook.test")
    campaigns = {}
    for name in ("active one", "active two", "paused by user", "draft"):
        campaigns[name] = make_campaign(db, user, mailbox, name=name)
        add(db, user, campaigns[name])
    elsewhere = make_campaign(db, user, other_mailbox, name="elsewhere")
    add(db, user, elsewhere)
    for name in ("active one", "active two", "paused by user"):
        service.start(db, user, campaigns[name].id)
    service.start(db, user, elsewhere.id)
    service.pause(db, user, campaigns["paused by user"].id)

    paused = service.pause_campaigns_for_mailbox(
        db, mailbox.id, PauseReason.MAILBOX_REAUTH_REQUIRED
    )

    assert sorted(paused) == sorted([campaigns["active one"].id, campaigns["active two"].id])
    for name in ("active one", "active two"):
        campaign = fresh(db, campaigns[name].id)
        assert campaign.status is CampaignStatus.PAUSED
        assert campaign.pause_reason is PauseReason.MAILBOX_REAUTH_REQUIRED
        assert service.pause_reason_words(campaign) == (
            "Paused because the sending account needs reauthentication."
        )
        event = events(db, campaign.id)[-1]
        assert (event.kind, event.actor_id) == ("paused", None)
        assert event.reason == service.PAUSE_REASON_WORDS[PauseReason.MAILBOX_REAUTH_REQUIRED]
    user_paused = fresh(db, campaigns["paused by user"].id)
    assert (user_paused.status, user_paused.pause_reason) == (
        CampaignStatus.PAUSED,
        PauseReason.USER,
    )
    assert [e.kind for e in events(db, user_paused.id)].count("paused") == 1
    assert fresh(db, campaigns["draft"].id).status is CampaignStatus.DRAFT
    assert fresh(db, elsewhere.id).status is CampaignStatus.ACTIVE


def test_pause_campaigns_for_mailbox_with_nothing_active(
    db: Session, user: User, mailbox: Mailbox, ready: Campaign
) -> None:
    assert service.pause_campaigns_for_mailbox(db, mailbox.id, PauseReason.SEND_ERRORS) == []
    assert fresh(db, ready.id).status is CampaignStatus.DRAFT


# Concurrency ---------------------------------------------------------------------------------


def test_concurrent_resume_takes_effect_once(engine: Engine, db: Session) -> None:
    owner = make_user(db)
    mailbox = make_mailbox(db, owner)
    ids = []
    for round_number in range(4):
        campaign = make_campaign(db, owner, mailbox, name=f"race {round_number}")
        add(db, owner, campaign)
        service.start(db, owner, campaign.id)
        service.pause(db, owner, campaign.id)
        ids.append(campaign.id)
    user_id = owner.id
    db.commit()
    factory = make_session_factory(engine)

    for campaign_id in ids:
        barrier = threading.Barrier(2)
        outcomes: list[str] = []
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=_resume_in_own_session,
                args=(factory, user_id, campaign_id, barrier, outcomes, errors),
            )
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert sorted(outcomes) == ["conflict", "resumed"]
        kinds = [e.kind for e in events(db, campaign_id)]
        assert kinds.count("resumed") == 1
        assert fresh(db, campaign_id).status is CampaignStatus.ACTIVE


def _resume_in_own_session(
    factory: sessionmaker[Session],
    user_id: int,
    campaign_id: int,
    barrier: threading.Barrier,
    outcomes: list[str],
    errors: list[BaseException],
) -> None:
    session = factory()
    try:
        actor = session.get(User, user_id)
        assert actor is not None
        barrier.wait(timeout=10)
        resuming.resume(session, actor, campaign_id)
        session.commit()
        outcomes.append("resumed")
    except Conflict:
        session.rollback()
        outcomes.append("conflict")
    except BaseException as error:
        session.rollback()
        errors.append(error)
    finally:
        session.close()


# Editing and duplicating ---------------------------------------------------------------------


def edit(db: Session, user: User, campaign: Campaign, **changes: object) -> Campaign:
    values: dict[str, object] = {
        "name": "Renamed",
        "mailbox_id": campaign.mailbox_id,
        "steps": [service.StepIn("New subject", "New body")],
        "schedule": parse_schedule(["mon"], "09:00", "17:00", "Europe/Paris"),
        "start_delay_minutes": 5,
    }
    values.update(changes)
    return service.update_campaign(db, user, campaign.id, **values)  # type: ignore[arg-type]


def test_editing_a_draft(db: Session, user: User, ready: Campaign) -> None:
    edited = edit(db, user, ready)
    assert edited.name == "Renamed"
    assert [s.subject for s in edited.steps] == ["New subject"]
    assert (edited.schedule_days, edited.timezone, edited.start_delay_minutes) == (
        "mon",
        "Europe/Paris",
        5,
    )
    assert events(db, ready.id)[-1].kind == "edited"


def test_editing_is_refused_while_active(db: Session, user: User, ready: Campaign) -> None:
    service.start(db, user, ready.id)
    with pytest.raises(Conflict, match="active campaign cannot be edited; pause it first") as e:
        edit(db, user, ready)
    assert e.value.code == "not_editable"
    assert fresh(db, ready.id).name == "Backend engineers"
    service.pause(db, user, ready.id)
    assert edit(db, user, ready).name == "Renamed"


def test_editing_is_refused_once_completed(db: Session, user: User, ready: Campaign) -> None:
    service.start(db, user, ready.id)
    service.complete(db, ready.id)
    with pytest.raises(Conflict, match=r"^A completed campaign cannot be edited\.$"):
        edit(db, user, ready)


def test_duplicate_copies_steps_and_schedule_but_no_recipients(
    db: Session, user: User, mailbox: Mailbox
) -> None:
    source = service.create_campaign(
        db,
        user,
        name="Founders",
        mailbox_id=mailbox.id,
        steps=[
            service.StepIn("Hi {{ first_name }}", "Text", 0, "<p>HTML</p>", False),
            service.StepIn("Another angle", "More", 60, "", True),
        ],
        schedule=parse_schedule(["tue", "thu"], "08:30", "16:00", "America/New_York"),
        start_delay_minutes=90,
    )
    add(db, user, source, RecipientIn("grace@example.com", first_name="Grace"))
    service.start(db, user, source.id)

    copy = service.duplicate(db, user, source.id)

    assert copy.id != source.id
    assert (copy.name, copy.status) == ("Founders (copy)", CampaignStatus.DRAFT)
    copied = [
        (s.position, s.subject, s.body, s.body_html, s.delay_minutes, s.new_thread)
        for s in copy.steps
    ]
    assert copied == [
        (1, "Hi {{ first_name }}", "Text", "<p>HTML</p>", 0, False),
        (2, "Another angle", "More", "", 60, True),
    ]
    assert (copy.schedule_days, copy.schedule_start, copy.schedule_end, copy.timezone) == (
        "tue,thu",
        "08:30",
        "16:00",
        "America/New_York",
    )
    assert copy.start_delay_minutes == 90
    assert copy.started_at is None
    count = db.scalars(select(Enrollment).where(Enrollment.campaign_id == copy.id)).all()
    assert count == []
    assert events(db, source.id)[-1].kind == "duplicated"
    assert [e.kind for e in events(db, copy.id)] == ["created"]


# Access --------------------------------------------------------------------------------------


def test_members_see_only_their_own_campaigns_and_admins_see_all(
    db: Session, user: User, ready: Campaign
) -> None:
    member = make_user(db, "bob@example.com", Role.MEMBER)
    bob_mailbox = make_mailbox(db, member, "bob@gmail.test")
    bobs = make_campaign(db, member, bob_mailbox, name="Bob's")
    with pytest.raises(NotFound):
        service.get_campaign(db, member, ready.id)
    with pytest.raises(NotFound):
        service.archive(db, member, ready.id)
    assert [c.id for c in service.visible_campaigns(db, member)] == [bobs.id]
    assert {c.id for c in service.visible_campaigns(db, user)} == {ready.id, bobs.id}
    # An admin acts on anyone's campaign in the workspace.
    assert service.archive(db, user, bobs.id).status is CampaignStatus.ARCHIVED


def test_sending_from_someone_elses_mailbox_is_refused(
    db: Session, user: User, mailbox: Mailbox
) -> None:
    member = make_user(db, "bob@example.com", Role.MEMBER)
    with pytest.raises(InvalidInput) as refused:
        make_campaign(db, member, mailbox)
    assert refused.value.code == "unknown_mailbox"


def test_create_checks_every_field(db: Session, user: User, mailbox: Mailbox) -> None:
    with pytest.raises(InvalidInput, match="Give the campaign a name"):
        make_campaign(db, user, mailbox, name="   ")
    with pytest.raises(InvalidInput, match="Step 2 needs a body"):
        make_campaign(db, user, mailbox, steps=[service.StepIn("a", "b"), service.StepIn("", "")])
    with pytest.raises(TemplateProblem, match="Step 1 body"):
        make_campaign(db, user, mailbox, steps=[service.StepIn("a", "Hi {{ first_name")])
    bomb = '{% set x = "a" * 100000 %}{% set y = [x] * 1000 %}{{ y | join }}'
    with pytest.raises(TemplateProblem, match="Step 1 HTML body: the template is over its render"):
        make_campaign(db, user, mailbox, steps=[service.StepIn("a", "b", body_html=bomb)])
    with pytest.raises(InvalidInput, match="start delay"):
        make_campaign(db, user, mailbox, start_delay_minutes=-1)
    assert db.scalars(select(Campaign)).all() == []


def test_a_reply_keeps_its_threads_subject(db: Session, user: User, mailbox: Mailbox) -> None:
    """Gmail threads a reply only when its subject matches; a reply step has no subject of
    its own, and one that would silently start a new thread is refused with the reason."""
    first = service.StepIn("Quick question, {{ first_name }}", "Hello")
    for same in ("", "Quick question, {{ first_name }}", "re:  quick question, {{ first_name }}"):
        campaign = make_campaign(db, user, mailbox, steps=[first, service.StepIn(same, "Again")])
        steps = service.get_campaign(db, user, campaign.id).steps
        assert [s.subject for s in steps] == [first.subject, ""]
    with pytest.raises(InvalidInput) as refused:
        make_campaign(db, user, mailbox, steps=[first, service.StepIn("Following up", "Again")])
    assert refused.value.code == "reply_subject_mismatch"
    assert 'its subject is step 1\'s: "Re: Quick question, {{ first_name }}"' in str(refused.value)
    assert "send it as a new email" in str(refused.value)
    own = service.StepIn("Another angle", "More", 60, "", True)
    reply_to_own = service.StepIn("", "Last", 60)
    campaign = make_campaign(db, user, mailbox, steps=[first, own, reply_to_own])
    assert [s.subject for s in campaign.steps] == [first.subject, "Another angle", ""]
    add(db, user, campaign, RecipientIn("fay@example.com", first_name="Fay"))
    db.expire_all()
    loaded = service.get_campaign(db, user, campaign.id)
    subjects = [validation.preview(db, loaded, n)[0].subject for n in (1, 2, 3)]
    assert subjects == ["Quick question, Fay", "Another angle", "Re: Another angle"]


# Validation ----------------------------------------------------------------------------------


def problems_of(db: Session, campaign: Campaign) -> list[validation.Problem]:
    db.expire_all()
    owner = db.get(User, campaign.owner_id)
    assert owner is not None
    problems, total = validation.validate(db, service.get_campaign(db, owner, campaign.id))
    assert total == len(problems)
    return problems


def test_a_ready_campaign_has_no_problems(db: Session, ready: Campaign) -> None:
    assert validation.validate(db, ready) == ([], 0)


def test_validation_names_each_recipient_and_step_with_a_missing_field(
    db: Session, user: User, mailbox: Mailbox
) -> None:
    campaign = make_campaign(
        db,
        user,
        mailbox,
        steps=[
            service.StepIn("Hi {{ first_name }}", "About {{ company }}"),
            service.StepIn("Re: {{ project }}", "Still there?", 60, new_thread=True),
        ],
    )
    add(
        db,
        user,
        campaign,
        RecipientIn("full@example.com", first_name="Fay", company="Acme", fields={"project": "X"}),
        RecipientIn("nofirst@example.com", company="Acme", fields={"project": "X"}),
        RecipientIn("noproject@example.com", first_name="Nat", company="Acme"),
    )
    problems = problems_of(db, campaign)
    assert [(p.step, p.recipient) for p in problems] == [
        (1, "nofirst@example.com"),
        (2, "noproject@example.com"),
    ]
    assert "(step 1 subject)" in problems[0].message
    assert "{{ first_name }} is empty for 1 of 3 recipients" in problems[0].message
    assert "{{ project }}" in problems[1].message


def test_validation_reports_a_syntax_error_with_its_step(
    db: Session, user: User, ready: Campaign
) -> None:
    # The editor refuses broken templates, so this one arrives by another route.
    db.add(CampaignStep(campaign_id=ready.id, position=3, subject="Bye", body="{% if %}"))
    db.flush()
    (problem,) = problems_of(db, ready)
    assert problem.step == 3
    assert problem.recipient is None
    assert problem.message.startswith("Step 3 body:")
    assert "(line 1)" in problem.message


def test_validation_without_steps_or_recipients(db: Session, user: User, mailbox: Mailbox) -> None:
    campaign = make_campaign(db, user, mailbox, steps=[])
    assert [p.message for p in problems_of(db, campaign)] == [
        "Add at least one step.",
        "Add at least one recipient.",
    ]


@pytest.mark.parametrize("status", [MailboxStatus.REAUTH_REQUIRED, MailboxStatus.DISCONNECTED])
def test_validation_requires_a_connected_mailbox(
    db: Session, mailbox: Mailbox, ready: Campaign, status: MailboxStatus
) -> None:
    mailbox.status = status
    db.flush()
    assert [p.message for p in problems_of(db, ready)] == [
        "The sending account ada@gmail.test is not connected."
    ]


def test_start_refuses_with_the_problems(db: Session, user: User, mailbox: Mailbox) -> None:
    campaign = make_campaign(db, user, mailbox, steps=[service.StepIn("Hi {{ nick }}", "Body")])
    add(db, user, campaign, *(RecipientIn(f"r{i}@example.com") for i in range(103)))
    # A second step reads the same missing field.
    db.add(CampaignStep(campaign_id=campaign.id, position=2, subject="", body="{{ nick }}"))
    db.flush()
    db.expire_all()
    with pytest.raises(validation.CampaignNotReady) as refused:
        service.start(db, user, campaign.id)
    error = refused.value
    assert error.status_code == 422
    assert error.code == "campaign_not_ready"
    # The same missing field for every recipient in two steps is one problem, with its count.
    assert error.total == 1
    assert error.message == "The campaign cannot start yet: 1 problem to fix."
    assert error.problems == [
        validation.Problem(
            "{{ nick }} is empty for 103 of 103 recipients (step 1 subject, step 2 body). "
            'Give them a value, or a default: {{ nick | default("…") }}.',
            step=1,
            recipient="r0@example.com",
            recipients=103,
        )
    ]
    assert fresh(db, campaign.id).status is CampaignStatus.DRAFT
    assert "started" not in [e.kind for e in events(db, campaign.id)]


def test_validation_reports_a_runtime_error_instead_of_crashing(
    db: Session, user: User, ready: Campaign
) -> None:
    db.add(CampaignStep(campaign_id=ready.id, position=3, subject="Bye", body="{{ 1 / 0 }}"))
    db.flush()
    (problem,) = problems_of(db, ready)
    assert (problem.step, problem.recipient) == (3, "grace@example.com")


def test_recipients_cannot_join_a_finished_campaign(
    db: Session, user: User, ready: Campaign
) -> None:
    service.archive(db, user, ready.id)
    with pytest.raises(Conflict, match="archived campaign"):
        add_recipients(db, user, ready.id, [RecipientIn("new@example.com")])
