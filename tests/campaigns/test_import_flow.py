"""The import's mapping step, candidate memory and counts that agree, on both databases."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.campaigns import candidates, import_flow, importer, service
from sendwell.campaigns.recipients import RecipientIn
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import InvalidInput, NotFound
from sendwell.models import (
    Campaign,
    CampaignEvent,
    Enrollment,
    EnrollmentStatus,
    Mailbox,
    PendingImport,
    Role,
    Suppression,
    SuppressionReason,
    User,
)
from tests.campaigns.test_service import add, make_campaign, make_mailbox, make_user

CSV = (
    "email,first name,role,company\n"
    "replied@example.com,Rita,Backend,Acme\n"
    "contacted@example.com,Carl,Frontend,Acme\n"
    "bounced@example.com,Bo,Data,Acme\n"
    "dnc@example.com,Dee,Ops,Acme\n"
    "new@example.com,Nia,Backend,Acme\n"
    "new@example.com,Nia,Backend,Acme\n"
    "not-an-address,X,Y,Z\n"
    ",No,Address,Here\n"
)


@pytest.fixture
def user(db: Session) -> User:
    return make_user(db)


@pytest.fixture
def mailbox(db: Session, user: User) -> Mailbox:
    return make_mailbox(db, user)


def one_step() -> list[service.StepIn]:
    return [service.StepIn("Hi {{ first_name | default('there') }}", "Hello")]


@pytest.fixture
def earlier(db: Session, user: User, mailbox: Mailbox) -> Campaign:
    """An earlier campaign: one recipient replied, one was emailed, one bounced."""
    campaign = make_campaign(db, user, mailbox, name="Winter outreach", steps=one_step())
    add(
        db,
        user,
        campaign,
        RecipientIn("replied@example.com"),
        RecipientIn("contacted@example.com"),
        RecipientIn("bounced@example.com"),
        RecipientIn("untouched@example.com"),
    )
    rows = {e.email: e for e in db.scalars(select(Enrollment))}
    rows["replied@example.com"].status = EnrollmentStatus.REPLIED
    rows["replied@example.com"].steps_sent = 1
    rows["contacted@example.com"].status = EnrollmentStatus.IN_PROGRESS
    rows["contacted@example.com"].steps_sent = 1
    rows["contacted@example.com"].last_sent_at = utcnow() - timedelta(days=3)
    rows["bounced@example.com"].status = EnrollmentStatus.BOUNCED
    db.add(
        Suppression(
            workspace_id=user.workspace_id,
            email="dnc@example.com",
            reason=SuppressionReason.DO_NOT_CONTACT,
        )
    )
    db.flush()
    return campaign


@pytest.fixture
def spring(db: Session, user: User, mailbox: Mailbox, earlier: Campaign) -> Campaign:
    return make_campaign(db, user, mailbox, name="Spring outreach", steps=one_step())


def stage(db: Session, user: User, campaign: Campaign, data: str = CSV) -> PendingImport:
    return import_flow.stage(
        db, user, campaign.id, io.BytesIO(data.encode()), filename="people.csv", max_bytes=10**6
    )


def test_the_mapping_page_shows_each_column_a_sample_and_its_proposed_target(
    db: Session, user: User, spring: Campaign
) -> None:
    page = import_flow.mapping_page(db, user, stage(db, user, spring))
    assert [(c.header, c.sample, c.choice, c.merge_field) for c in page.columns] == [
        ("email", "replied@example.com", "email", "email"),
        ("first name", "Rita", "first_name", "first_name"),
        # Never renamed silently: "role" stays a merge field of its own name.
        ("role", "Backend", "custom", "role"),
        ("company", "Acme", "company", "company"),
    ]
    assert page.has_email
    assert page.addresses == 5
    assert [(s.email, s.words) for s in page.history] == [
        ("bounced@example.com", "bounced in “Winter outreach”"),
        ("contacted@example.com", "contacted in “Winter outreach”"),
        ("replied@example.com", "replied in “Winter outreach”"),
        ("dnc@example.com", "on the suppression list (do not contact)"),
    ]


def test_a_column_mapped_by_hand_and_the_default_skips(
    db: Session, user: User, spring: Campaign
) -> None:
    pending = stage(db, user, spring)
    report = import_flow.confirm(
        db,
        user,
        pending,
        {3: "title"},
        skip_previous=candidates.DEFAULT_SKIP,
        allow_test_domains=True,
    )
    added = {
        e.email: e
        for e in db.scalars(select(Enrollment).where(Enrollment.campaign_id == spring.id))
    }
    assert sorted(added) == ["contacted@example.com", "new@example.com"]
    assert added["new@example.com"].title == "Backend"
    assert added["new@example.com"].fields == {}
    assert [(s.row, s.email, s.reason) for s in report.skipped] == [
        (2, "replied@example.com", "replied in another campaign (“Winter outreach”)"),
        (4, "bounced@example.com", "bounced in another campaign (“Winter outreach”)"),
        (5, "dnc@example.com", "on the suppression list (do not contact)"),
        (7, "new@example.com", "duplicate in this list"),
        (8, "not-an-address", report.skipped[4].reason),
        (9, "", "no email address"),
    ]
    assert report.skipped[4].reason.startswith("invalid address")
    # The upload is gone once imported.
    with pytest.raises(NotFound, match="choose the file again"):
        import_flow.load(db, user, spring.id, pending.token)


def test_the_summary_and_the_activity_log_give_the_same_counts(
    db: Session, user: User, spring: Campaign
) -> None:
    report = import_flow.confirm(
        db,
        user,
        stage(db, user, spring),
        {},
        skip_previous=frozenset({candidates.CONTACTED, *candidates.DEFAULT_SKIP}),
        allow_test_domains=True,
    )
    assert report.imported == 1
    assert len(report.skipped) == 7
    expected = (
        "Added 1 recipient; skipped 7 (1 bounced in another campaign, 1 contacted in another "
        "campaign, 1 duplicate in this list, 1 invalid address, 1 no email address, "
        "1 on the suppression list (do not contact), 1 replied in another campaign)."
    )
    assert report.summary == expected
    logged = db.scalars(
        select(CampaignEvent.reason).where(
            CampaignEvent.campaign_id == spring.id, CampaignEvent.kind == "recipients_added"
        )
    ).all()
    assert logged == [expected]


def test_nothing_added_and_all_skipped_is_still_logged(
    db: Session, user: User, spring: Campaign
) -> None:
    report = importer.import_csv(
        db, user, spring.id, io.BytesIO(b"email\nnot-an-address\n"), allow_test_domains=True
    )
    assert (report.imported, len(report.skipped)) == (0, 1)
    reasons = db.scalars(
        select(CampaignEvent.reason).where(CampaignEvent.kind == "recipients_added")
    ).all()
    assert "Added 0 recipients; skipped 1 (1 invalid address)." in reasons


def test_an_upload_is_its_owners_for_its_campaign_and_expires(
    db: Session, user: User, mailbox: Mailbox, spring: Campaign
) -> None:
    pending = stage(db, user, spring)
    other = make_campaign(db, user, mailbox, name="Other", steps=one_step())
    with pytest.raises(NotFound):
        import_flow.load(db, user, other.id, pending.token)
    member = make_user(db, "bob@example.com", role=Role.MEMBER)
    with pytest.raises(NotFound):  # not even told that the campaign exists
        import_flow.load(db, member, spring.id, pending.token)
    pending.expires_at = utcnow() - timedelta(seconds=1)
    db.flush()
    with pytest.raises(NotFound, match="expired"):
        import_flow.load(db, user, spring.id, pending.token)
    # A new upload clears the expired one and the campaign's earlier one.
    fresh = stage(db, user, spring)
    assert db.scalars(select(PendingImport.token)).all() == [fresh.token]


def test_an_oversized_upload_is_refused_with_the_limit(
    db: Session, user: User, spring: Campaign
) -> None:
    with pytest.raises(InvalidInput, match=r"larger than 0\.0001 MB"):
        import_flow.stage(
            db, user, spring.id, io.BytesIO(CSV.encode()), filename="big.csv", max_bytes=100
        )
    assert db.scalars(select(PendingImport)).all() == []


def test_a_teammates_campaign_name_is_not_shown_to_a_member(
    db: Session, user: User, earlier: Campaign
) -> None:
    member = make_user(db, "bob@example.com", role=Role.MEMBER)
    own = make_campaign(db, member, make_mailbox(db, member, "bob@gmail.test"), steps=one_step())
    seen = candidates.history(
        db, member, member.workspace_id, own.id, ["replied@example.com", "new@example.com"]
    )
    assert {email: s.words for email, s in seen.items()} == {
        "replied@example.com": "replied in “a teammate's campaign”"
    }


def test_unknown_history_to_skip_is_refused() -> None:
    with pytest.raises(InvalidInput, match="Unknown history to skip: called"):
        candidates.parse_skip(["replied", "called"])


def test_an_imported_time_zone_is_checked_row_by_row_and_kept(
    db: Session, user: User, spring: Campaign
) -> None:
    data = (
        "email,Time zone\n"
        "kenji@example.com,Asia/Tokyo\n"
        "mars@example.com,Mars/Olympus\n"
        "plain@example.com,\n"
    )
    pending = stage(db, user, spring, data)
    page = import_flow.mapping_page(db, user, pending)
    assert [(c.header, c.choice) for c in page.columns] == [
        ("email", "email"),
        ("Time zone", "timezone"),
    ]
    report = import_flow.confirm(
        db, user, pending, {}, skip_previous=frozenset(), allow_test_domains=True
    )
    assert [(s.row, s.email, s.reason) for s in report.skipped] == [
        (
            3,
            "mars@example.com",
            "unknown time zone “Mars/Olympus”: use an IANA name such as Asia/Tokyo or Europe/Paris",
        )
    ]
    assert report.summary == "Added 2 recipients; skipped 1 (1 unknown time zone)."
    db.expire_all()
    zones = dict(
        db.execute(
            select(Enrollment.email, Enrollment.timezone).where(Enrollment.campaign_id == spring.id)
        ).all()
    )
    assert zones == {"kenji@example.com": "Asia/Tokyo", "plain@example.com": ""}
    assert db.get(Campaign, spring.id).recipient_time_zones  # type: ignore[union-attr]
